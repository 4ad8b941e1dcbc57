# deploy.yml's deploy job under act (tools/testkit/src/mnist_testkit/act.py), for the stack test
# (target compose, over SSH) and the Kubernetes test (target kubernetes): sourced by both.
# shellcheck shell=bash

# deploy_job LOG RESULT_FILE OPTIONS...: deploy.yml's deploy job alone (the jobs it needs cut) in
# a clone of HEAD at $WORK/act/repo, under act (OPTIONS: python -m mnist_testkit.act's --input,
# --var, --secret-from-env); what the job printed and act's log go to LOG, each job's result to
# RESULT_FILE. Fails, showing both, unless the deploy job alone ran and succeeded. Needs PY,
# REPO_ROOT and WORK.
deploy_job() {
  local log=$1 results=$2
  shift 2
  "$PY" -m mnist_testkit.act "$REPO_ROOT" "$WORK/act/repo" deploy.yml workflow_dispatch --job deploy \
    --log "$log" "$@" >"$results" 2>&1 \
    || { cat "$results" >&2; sed -n '/^--- act ---$/q;p' "$log" | tail -40 >&2; return 1; }
}
