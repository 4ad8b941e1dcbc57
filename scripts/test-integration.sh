#!/usr/bin/env bash
# Smoke-test a running stack from outside: health, readiness, a real prediction, the API key,
# metrics, and the frontend. Used by deploy.sh after every `up`, and by hand or from CI.
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x

BACKEND_URL=http://127.0.0.1:8000
FRONTEND_URL=http://127.0.0.1:8501
TIMEOUT=60
API_KEY_FILE=""
METRICS_URL=""
PROMETHEUS_URL=""
CANARY_VERSION=""
CURL_TLS=()

usage() {
  cat <<'USAGE'
Usage: scripts/test-integration.sh [--backend-url U] [--frontend-url U] [--timeout S]
                                   [--api-key-file F] [--metrics-url U | --prometheus-url U]
                                   [--canary-version V] [--cacert F] [--resolve HOST:PORT:ADDR]

Checks, against a running stack:
  backend   /health answers (waits up to --timeout seconds), /ready says ready with a version,
            a real MNIST digit (a held-out 7) is predicted as 7,
            without the API key the API answers 401 (when --api-key-file or API_KEY is given)
  canary    with --canary-version V: `X-Experiment-Group: canary` is answered by model version V
            and a request without it by another version (production's edge; run from a network
            nginx lets choose the canary, such as the host itself)
  metrics   the backend's Prometheus metrics are served (--metrics-url, default <backend>/metrics),
            or, where /metrics is not public, Prometheus has scraped every backend (--prometheus-url)
  frontend  the Streamlit health endpoint says ok and the page is served
Defaults: backend http://127.0.0.1:8000, frontend http://127.0.0.1:8501, timeout 60 s.
--cacert / --resolve are passed to curl (self-signed certificates, a public name on this host).
Exit status: 0 when every check passes, 1 otherwise (each failure is named).
USAGE
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --backend-url) BACKEND_URL=${2:?--backend-url needs a value}; shift ;;
    --frontend-url) FRONTEND_URL=${2:?--frontend-url needs a value}; shift ;;
    --timeout) TIMEOUT=${2:?--timeout needs a value}; shift ;;
    --api-key-file) API_KEY_FILE=${2:?--api-key-file needs a value}; shift ;;
    --metrics-url) METRICS_URL=${2:?--metrics-url needs a value}; shift ;;
    --prometheus-url) PROMETHEUS_URL=${2:?--prometheus-url needs a value}; shift ;;
    --canary-version) CANARY_VERSION=${2:?--canary-version needs a value}; shift ;;
    --cacert) CURL_TLS+=(--cacert "${2:?--cacert needs a value}"); shift ;;
    --resolve) CURL_TLS+=(--resolve "${2:?--resolve needs a value}"); shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] || { echo "error: --timeout must be whole seconds, got '$TIMEOUT'" >&2; exit 2; }
BACKEND_URL=${BACKEND_URL%/}
FRONTEND_URL=${FRONTEND_URL%/}
[[ -z "$METRICS_URL" && -z "$PROMETHEUS_URL" ]] && METRICS_URL="$BACKEND_URL/metrics"

API_KEY=${API_KEY:-}
if [[ -n "$API_KEY_FILE" ]]; then
  [[ -r "$API_KEY_FILE" ]] || { echo "error: cannot read --api-key-file $API_KEY_FILE" >&2; exit 2; }
  API_KEY=$(grep -v -E '^\s*(#|$)' "$API_KEY_FILE" | head -n1 | tr -d '[:space:]')
fi
AUTH=()
[[ -n "$API_KEY" ]] && AUTH=(-H "X-API-Key: $API_KEY")

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
FAILURES=0
pass() { printf '  ok    %s\n' "$*"; }
fail() { printf '  FAIL  %s\n' "$*"; FAILURES=$((FAILURES + 1)); }

# http METHOD URL [curl args...]: the status code; the body is left in $WORK/body.
http() {
  local method=$1 url=$2
  shift 2
  curl -sS -o "$WORK/body" -w '%{http_code}' --max-time 10 "${CURL_TLS[@]}" -X "$method" "$@" "$url" 2>"$WORK/err" || true
}
body_json() {  # a Python expression over `d`, the JSON body
  python3 -c "import json, sys; d = json.load(open(sys.argv[1])); print($1)" "$WORK/body" 2>/dev/null
}

echo "Integration test: backend $BACKEND_URL, frontend $FRONTEND_URL"

deadline=$((SECONDS + TIMEOUT))
until [[ $(http GET "$BACKEND_URL/health") == 200 ]]; do
  if ((SECONDS >= deadline)); then
    fail "backend /health did not answer 200 within ${TIMEOUT}s ($(cat "$WORK/err" 2>/dev/null | head -c 200))"
    echo "integration test: FAILED (backend unreachable)"
    exit 1
  fi
  sleep 1
done
pass "backend /health"

status=$(http GET "$BACKEND_URL/ready")
if [[ $status == 200 ]]; then
  pass "backend /ready (model $(body_json 'd["model_version"]'))"
else
  fail "backend /ready answered $status: $(head -c 300 "$WORK/body")"
fi

python3 "$(dirname "$0")/digit_request.py" 7 >"$WORK/digit7.json"
status=$(http POST "$BACKEND_URL/api/v1/predict" -H 'Content-Type: application/json' "${AUTH[@]}" \
  --data-binary "@$WORK/digit7.json")
if [[ $status == 200 && $(body_json 'd["digit"]') == 7 ]]; then
  pass "prediction: a held-out 7 is read as 7 (confidence $(body_json 'round(d["confidence"], 3)'), model $(body_json 'd["model_version"]'))"
else
  fail "prediction: expected 200 and digit 7, got $status: $(head -c 300 "$WORK/body")"
fi

if [[ -n "$CANARY_VERSION" ]]; then
  stable=$(body_json 'd["model_version"]')
  status=$(http POST "$BACKEND_URL/api/v1/predict" -H 'Content-Type: application/json' "${AUTH[@]}" \
    -H 'X-Experiment-Group: canary' --data-binary "@$WORK/digit7.json")
  served=$(body_json 'd["model_version"]')
  if [[ $status == 200 && "$served" == "$CANARY_VERSION" && "$stable" != "$CANARY_VERSION" ]]; then
    pass "canary: X-Experiment-Group: canary is served by $served, other requests by $stable"
  else
    fail "canary: expected $CANARY_VERSION for X-Experiment-Group: canary (stable $stable), got $status ${served:-}"
  fi
fi

if [[ -n "$API_KEY" ]]; then
  status=$(http POST "$BACKEND_URL/api/v1/predict" -H 'Content-Type: application/json' --data-binary "@$WORK/digit7.json")
  if [[ $status == 401 ]]; then pass "API key enforced (401 without it)"; else fail "without an API key expected 401, got $status"; fi
fi

if [[ -n "$METRICS_URL" ]]; then
  status=$(http GET "$METRICS_URL")
  if [[ $status == 200 ]] && grep -q '^mnist_http_requests_total' "$WORK/body"; then
    pass "metrics served at $METRICS_URL"
  else
    fail "metrics: expected mnist_http_requests_total at $METRICS_URL, got $status"
  fi
fi

if [[ -n "$PROMETHEUS_URL" ]]; then
  # Scrapes come every 15 s: wait until every backend target Prometheus discovers now (by DNS)
  # was up at its last scrape. The targets, not `up` series: a Prometheus restarted during a
  # deploy still shows the last samples of targets that are gone for 5 minutes.
  targets="(lambda t: str(sum(x['health'] == 'up' for x in t)) + '/' + str(len(t)))([x for x in d['data']['activeTargets'] if x['labels'].get('job', '').startswith('mnist-backend')])"
  all_up() {
    local seen
    status=$(http GET "${PROMETHEUS_URL%/}/api/v1/targets?state=active") && [[ $status == 200 ]] || return 1
    seen=$(body_json "$targets")
    [[ "$seen" =~ ^([0-9]+)/([0-9]+)$ && ${BASH_REMATCH[1]} == "${BASH_REMATCH[2]}" && ${BASH_REMATCH[2]} -gt 0 ]]
  }
  until all_up; do
    if ((SECONDS >= deadline + 30)); then
      fail "Prometheus at $PROMETHEUS_URL has not seen every backend target up (up/targets: $(body_json "$targets" || head -c 200 "$WORK/body"))"
      break
    fi
    sleep 2
  done
  all_up && pass "Prometheus scrapes every backend ($(body_json "$targets") targets up)"
fi

status=$(http GET "$FRONTEND_URL/_stcore/health")
if [[ $status == 200 ]]; then pass "frontend health"; else fail "frontend /_stcore/health answered $status"; fi
status=$(http GET "$FRONTEND_URL/")
if [[ $status == 200 ]] && grep -qi '<div id="root">' "$WORK/body"; then
  pass "frontend page served"
else
  fail "frontend page: expected the Streamlit page, got $status"
fi

if ((FAILURES > 0)); then
  echo "integration test: FAILED ($FAILURES check(s))"
  exit 1
fi
echo "integration test: passed in ${SECONDS} s"
