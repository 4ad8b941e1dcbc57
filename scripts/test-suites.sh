#!/usr/bin/env bash
# `make test`: every suite's pytest, in two lanes when the machine has two cores or more.
#   scripts/test-suites.sh PYTHON SUITE...
# The backend's suite (the longest, ~8 min) runs in one lane, every other suite one after another
# in the other: most of what a suite does is wait (servers starting, timers, a browser), so the
# lanes overlap that waiting with the other's work. The backend lane's output is kept in
# artifacts/test-logs/ and printed when it ends. TEST_LANES=1 runs everything in one lane, in order.
# Any suite failing fails the run, and so does a suite that collects no test (pytest's exit 5).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
PY=$1
shift
lanes=${TEST_LANES:-$(($(nproc) >= 2 ? 2 : 1))}

run_suite() {  # SUITE: its pytest; the exit status is pytest's (5: nothing collected fails too)
  echo "=== $1 tests ==="
  (cd "$1" && "$PY" -m pytest)
}

if [[ $lanes -lt 2 ]] || ! printf '%s\n' "$@" | grep -qx backend; then
  for suite in "$@"; do run_suite "$suite" || exit $?; done
  exit 0
fi

mkdir -p artifacts/test-logs
log=artifacts/test-logs/backend.log
echo "=== backend tests: in the other lane, its output below when it ends ($log) ==="
started=$SECONDS
(
  run_suite backend
  status=$?
  echo "=== backend tests: exit $status after $((SECONDS - started)) s in their lane ==="
  exit "$status"
) >"$log" 2>&1 &
backend=$!
trap 'kill "$backend" 2>/dev/null' EXIT
status=0
for suite in "$@"; do
  [[ $suite == backend ]] && continue
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
