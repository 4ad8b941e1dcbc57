# The workflows' jobs under act (tools/testkit/src/mnist_testkit/act.py) for the stack test and
# the Kubernetes test: deploy.yml's deploy job (target compose over SSH, target kubernetes),
# backend.yml's image job, and the registry they would reach (a stand-in). Sourced by both.
# shellcheck shell=bash

# registry_stand_in DIR: DIR (emptied) with DIR/docker, to put first on PATH: GHCR cannot be reached from here, so
# that docker answers for it. `login` records its arguments and password (DIR/login.args,
# DIR/login.password); a `pull` of a ghcr.io image fails as from a registry that holds nothing
# (recorded in DIR/pulled); a `push` of a ghcr.io image records it with its image ID (DIR/pushed)
# and fails, as a real push would, when no such image is here. Every other command is the real docker.
registry_stand_in() {
  local dir=$1 real
  real=$(command -v docker)
  rm -rf "$dir"   # what an earlier run recorded
  mkdir -p "$dir"
  cat >"$dir/docker" <<STANDIN
#!/bin/sh
case "\$1" in
  login)
    shift
    echo "\$*" >"$dir/login.args"
    cat >"$dir/login.password"
    echo "Login Succeeded (a stand-in: nothing was sent)"
    exit 0 ;;
  pull|push)
    for image; do :; done   # the last argument
    case "\$image" in
      ghcr.io/*)
        if [ "\$1" = pull ]; then
          echo "\$image" >>"$dir/pulled"
          echo "Error response from daemon: manifest for \$image not found (a stand-in registry, empty)" >&2
          exit 1
        fi
        id=\$($real image inspect -f '{{.Id}}' "\$image") || exit 1
        echo "\$image \$id" >>"$dir/pushed"
        echo "\$image: pushed (to a stand-in: nothing was sent)"
        exit 0 ;;
    esac ;;
esac
exec $real "\$@"
STANDIN
  chmod +x "$dir/docker"
}

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

# check_image_job REGISTRY_DIR ACTIONS_JSONL REPOSITORY COMMIT TOKEN: what backend.yml's image job
# gave the registry stand-in and the recording actions: a login as the job's actor with its token,
# a look for the branch's last backend image (the build cache), the backend and frontend pushed by
# commit and by branch (one image each), the backend scanned by Trivy for the report and for the
# gate, and the report uploaded to code scanning under its category.
check_image_job() {
  local registry=$1 actions=$2 repository=$3 commit=$4 token=$5
  [[ $(cat "$registry/login.args") == "ghcr.io --username nektos/act --password-stdin" \
    && $(cat "$registry/login.password") == "$token" ]] \
    || fail "the image job's registry login got '$(cat "$registry/login.args" 2>/dev/null)', not the job's actor and token"
  grep -qxF "$repository/backend:main" "$registry/pulled" || fail "the image job did not look for its build cache ($repository/backend:main)"
  python3 - "$registry/pushed" "$actions" "$repository" "$commit" <<'PY' || fail "the image job's pushes or scans are not as image.yml says"
import json
import sys

pushed_file, actions_file, repository, commit = sys.argv[1:]
pushed = dict(line.split() for line in open(pushed_file))
for component in ("backend", "frontend"):
    by_commit, by_branch = f"{repository}/{component}:{commit}", f"{repository}/{component}:main"
    assert by_commit in pushed and pushed[by_commit] == pushed.get(by_branch), (component, pushed)
assert len(pushed) == 4, pushed
calls = [json.loads(line) for line in open(actions_file)]
image = f"{repository}/backend:{commit}"
report, upload, gate = calls
assert report["action"].startswith("aquasecurity/trivy-action@"), report
assert (report["inputs"]["image-ref"], report["inputs"]["format"], report["inputs"]["output"]) == (image, "sarif", "trivy-backend.sarif"), report
assert upload["action"].startswith("github/codeql-action@"), upload
assert upload["inputs"] == {"sarif_file": "trivy-backend.sarif", "category": "trivy-backend"}, upload
assert gate["action"] == report["action"], gate
assert (gate["inputs"]["image-ref"], gate["inputs"]["exit-code"], gate["inputs"]["ignore-unfixed"]) == (image, "1", "true"), gate
PY
}
