#!/usr/bin/env bash
# Start the backend API and the drawing page on this machine; Ctrl-C stops both.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/run-local.sh [--help]

Starts, from the repository's .venv:
  backend   python -m mnist_backend      http://127.0.0.1:$BACKEND_PORT  (default 8000)
  frontend  streamlit run (frontend/)    http://127.0.0.1:$FRONTEND_PORT (default 8501)
Environment: MODEL_DIR (default ./models), BACKEND_PORT, FRONTEND_PORT, VENV (default .venv).
`make run` installs everything and trains a model first when needed, then calls this.
USAGE
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }

cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
BACKEND_PORT=${BACKEND_PORT:-8000}
FRONTEND_PORT=${FRONTEND_PORT:-8501}
export MODEL_DIR=${MODEL_DIR:-$PWD/models}
PY="$PWD/$VENV/bin/python"
[[ -x "$PY" ]] || { echo "error: $PY not found; run 'make install' first" >&2; exit 1; }

pids=()
# shellcheck disable=SC2329  # called by the trap below
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

PORT=$BACKEND_PORT LOG_FORMAT=text "$PY" -m mnist_backend &
pids+=($!)
(cd frontend && BACKEND_URL="http://127.0.0.1:$BACKEND_PORT" exec "$PY" -m streamlit run src/mnist_frontend/app.py \
  --server.port "$FRONTEND_PORT" --server.address 127.0.0.1) &
pids+=($!)

for _ in $(seq 1 120); do
  if "$PY" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$BACKEND_PORT/health', timeout=1); \
u.urlopen('http://127.0.0.1:$FRONTEND_PORT/_stcore/health', timeout=1)" 2>/dev/null; then
    echo
    echo "  Drawing page: http://127.0.0.1:$FRONTEND_PORT"
    echo "  Backend API:  http://127.0.0.1:$BACKEND_PORT  (docs: http://127.0.0.1:$BACKEND_PORT/docs)"
    echo "  Ctrl-C stops both."
    echo
    break
  fi
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "error: a process exited during start-up (see its output above)" >&2; exit 1; }
  done
  sleep 0.5
done
wait -n "${pids[@]}"
echo "error: one of the processes stopped; stopping the other" >&2
exit 1
