# The workflows' jobs under act (tools/testkit/src/mnist_testkit/act.py) for the stack test and
# the Kubernetes test: deploy.yml's deploy job (target compose over SSH, target kubernetes),
# backend.yml's image job, and the registry they would reach (a stand-in). Sourced by both.
# shellcheck shell=bash

# registry_stand_in DIR: DIR (emptied) with DIR/docker, to put first on PATH: GHCR's stand-in
# (logins, pulls and pushes recorded in DIR; mnist_testkit/registry_stand_in.py). Needs PY.
registry_stand_in() { "$PY" -m mnist_testkit.registry_stand_in install "$1"; }

# workflow_job WORKFLOW EVENT JOB LOG RESULT_FILE OPTIONS...: JOB of WORKFLOW alone (the jobs it
# needs cut) in a clone of HEAD at $WORK/act/JOB, under act (OPTIONS: python -m mnist_testkit.act's
# --input, --var, --secret-from-env, --record-actions); what the job printed and act's log go to
# LOG, each job's result to RESULT_FILE. Fails, showing both, unless JOB alone ran and succeeded.
# Needs PY, REPO_ROOT and WORK.
workflow_job() {
  local workflow=$1 event=$2 job=$3 log=$4 results=$5
  shift 5
  "$PY" -m mnist_testkit.act "$REPO_ROOT" "$WORK/act/$job" "$workflow" "$event" --job "$job" \
    --log "$log" "$@" >"$results" 2>&1 \
    || { cat "$results" >&2; sed -n '/^--- act ---$/q;p' "$log" | tail -40 >&2; return 1; }
}

# deploy_job LOG RESULT_FILE OPTIONS...: deploy.yml's deploy job, dispatched (workflow_job).
deploy_job() { workflow_job deploy.yml workflow_dispatch deploy "$@"; }

# image_job LOG RESULT_FILE RECORDS OPTIONS...: backend.yml's image job (image.yml: build, scan,
# upload the findings, push; the sibling image too) on a push (workflow_job); the actions that need
# the internet (Trivy, the SARIF upload) record their inputs in RECORDS/actions.jsonl (emptied
# first). Put a registry_stand_in first on PATH.
image_job() {
  rm -rf "$3"
  workflow_job backend.yml push image "$1" "$2" --record-actions "$3" "${@:4}"
}
