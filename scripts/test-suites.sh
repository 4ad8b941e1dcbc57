#!/usr/bin/env bash
# `make test`: every suite's pytest, in two lanes when the machine has two cores or more.
#   scripts/test-suites.sh PYTHON SUITE...
# The backend's suite (the longest, ~7 min), then frontend.yml's test job under act (~2 min) and
# monitoring's, run in one lane, every other suite one after another in the other: most of what a suite does is
# wait (servers starting, timers, a browser), so the lanes overlap that waiting with the other's
# work. A suite is a folder with its own pytest configuration, but for the act tests of
# scripts/tests/, which the `scripts` suite leaves to two of their own: `workflows` (dispatches'
# inputs, deploy.yml's security job) and `frontend-job`. The backend lane's output is kept in
# artifacts/test-logs/ and printed when it ends. TEST_LANES=1 runs everything in one lane, in order.
# Any suite failing fails the run, and so does a suite that collects no test (pytest's exit 5).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
PY=$1
shift
lanes=${TEST_LANES:-$(($(nproc) >= 2 ? 2 : 1))}

WORKFLOW_TESTS=(tests/test_workflows_under_act.py tests/test_security_job_under_act.py)
FRONTEND_JOB_TESTS=(tests/test_frontend_job_under_act.py)
run_suite() {  # SUITE: its pytest; the exit status is pytest's (5: nothing collected fails too)
  echo "=== $1 tests ==="
  case $1 in
    workflows) (cd scripts && "$PY" -m pytest "${WORKFLOW_TESTS[@]}") ;;
    frontend-job) (cd scripts && "$PY" -m pytest "${FRONTEND_JOB_TESTS[@]}") ;;
    scripts) (cd scripts && "$PY" -m pytest "${WORKFLOW_TESTS[@]/#/--ignore=}" "${FRONTEND_JOB_TESTS[@]/#/--ignore=}") ;;
    *) (cd "$1" && "$PY" -m pytest) ;;
  esac
}

listed() {  # NAME SUITE...: whether NAME is one of the suites
  local suite
  for suite in "${@:2}"; do [[ $suite == "$1" ]] && return 0; done
  return 1
}

if [[ $lanes -lt 2 ]] || ! listed backend "$@"; then
  for suite in "$@"; do run_suite "$suite" || exit $?; done
  exit 0
fi
long=(backend)
listed frontend-job "$@" && long+=(frontend-job)
# Monitoring's suite (~40 s, mostly Prometheus's evaluation timers) evens the lanes: without it the
# other lane ended ~70 s after this one in CI.
listed monitoring "$@" && long+=(monitoring)

mkdir -p artifacts/test-logs
log=artifacts/test-logs/backend.log
echo "=== ${long[*]} tests: in the other lane, their output below when they end ($log) ==="
started=$SECONDS
(
  status=0
  for suite in "${long[@]}"; do
    run_suite "$suite" || { status=$?; break; }
  done
  echo "=== ${long[*]} tests: exit $status after $((SECONDS - started)) s in their lane ==="
  exit "$status"
) >"$log" 2>&1 &
backend=$!
trap 'kill "$backend" 2>/dev/null' EXIT
status=0
for suite in "$@"; do
  listed "$suite" "${long[@]}" && continue
  run_suite "$suite" || { status=$?; echo "=== $suite tests failed (exit $status) ==="; break; }
done
if [[ $status -ne 0 ]]; then
  kill "$backend" 2>/dev/null
  wait "$backend" 2>/dev/null
  exit "$status"
fi
wait "$backend"
backend_status=$?
trap - EXIT
cat "$log"
echo "=== both lanes done after $((SECONDS - started)) s ==="
exit "$backend_status"
