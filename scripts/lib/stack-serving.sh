# The production checks of scripts/test-stack.sh that exercise the running stack, not the Compose
# CLI that started it (sourced at its place in the test, with STACK_STEPS=all): resilience while a
# replica stops, hostile input through the edge and the page, the page-down alert reaching Slack,
# and a model's way through production's registry under load.
# shellcheck shell=bash
# shellcheck disable=SC2153,SC2154  # COMPOSE_ARGS, EDGE, WORK, PY, LOAD_RC, the versions...: test-stack.sh's

step "Resilience: 30 s of load at 40 r/s while one of the 3 replicas stops"
victim=$("${COMPOSE_ARGS[@]}" ps -q backend | sed -n 2p)
python3 scripts/load-test.py --url "$EDGE/api/v1/predict" --duration 30 --rate 40 --workers 8 \
  --api-key-file "$API_KEYS_FILE" --cacert "$TLS_CERT_DIR/tls.crt" --max-failure-ratio 0.001 \
  --json "$WORK/resilience.json" >"$WORK/resilience.out" 2>&1 &
load_pid=$!
sleep 10
docker stop -t 10 "$victim" >/dev/null
echo "  stopped replica $(docker inspect -f '{{.Name}}' "$victim") at t=10 s"
load_rc=0
wait "$load_pid" || load_rc=$?
cat "$WORK/resilience.out"
python3 - "$WORK/resilience.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"  RESILIENCE: {s['failures']} failed of {s['requests']} requests ({s['failure_ratio']:.3%}) "
      f"while a replica stopped; p99 {s['latency_ms']['p99']} ms")
PY
[[ $load_rc -eq 0 ]] || fail "more than 0.1 % of the requests failed while a replica stopped"
docker start "$victim" >/dev/null
check "< 0.1 % failed requests with a replica stopped"

step "Hostile input through the HTTPS edge and the page, while a steady stream of predictions runs"
backends_healthy() {
  local id
  for id in $("${COMPOSE_ARGS[@]}" ps -q backend backend-canary); do
    [[ $(docker inspect -f '{{.State.Health.Status}}' "$id") == healthy ]] || return 1
  done
}
deadline=$((SECONDS + 120))
until backends_healthy; do
  [[ $SECONDS -lt $deadline ]] || fail "the restarted replica did not become healthy again"
  sleep 2
done
# The backend attack tests' own bombs (backend/tests/hostile_images.py): a 2 KB 1-bit palette PNG
# with a transparent colour and a 130 KB 16-bit RGBA PNG, both 4096x4096.
(cd backend && "$PY" - "$WORK" <<'PY'
import json, sys
from pathlib import Path
from tests.hostile_images import as_base64, palette_bomb_png, rgba16_bomb_png
work = Path(sys.argv[1])
(work / "bomb-palette.png").write_bytes(palette_bomb_png())
for name, data in (("palette", palette_bomb_png()), ("rgba16", rgba16_bomb_png())):
    (work / f"bomb-{name}.json").write_text(json.dumps({"image_base64": as_base64(data)}))
(work / "bomb-batch.json").write_text(json.dumps({"images": [as_base64(palette_bomb_png())] * 256}))
PY
)
restarts() {  # every container of the stack: name, restart count and start time
  local ids
  mapfile -t ids < <("${COMPOSE_ARGS[@]}" ps -q)
  docker inspect -f '{{.Name}} {{.RestartCount}} {{.State.StartedAt}}' "${ids[@]}" | sort
}
restarts_before=$(restarts)
python3 scripts/load-test.py --url "$EDGE/api/v1/predict" --duration 40 --rate 20 --workers 4 \
  --api-key-file "$API_KEYS_FILE" --cacert "$TLS_CERT_DIR/tls.crt" --max-failure-ratio 0.001 \
  --json "$WORK/hostile-load.json" >"$WORK/hostile-load.out" 2>&1 &
load_pid=$!
sleep 3
bomb() {  # bomb BODY-FILE PATH: the status code
  "${CURL[@]}" -o "$WORK/bomb-reply.json" -w '%{http_code}' -H "X-API-Key: $API_KEY" \
    -H 'Content-Type: application/json' --data-binary "@$1" "$EDGE$2"
}
for name in palette rgba16; do
  for _ in 1 2 3 4 5; do
    status=$(bomb "$WORK/bomb-$name.json" /api/v1/predict)
    [[ $status == 422 ]] || fail "a 4096x4096 $name PNG got $status, not 422: $(cat "$WORK/bomb-reply.json")"
  done
done
check "10 single 4096x4096 PNG bombs (palette + tRNS, 16-bit RGBA): 422 each"
batch_start=$(date +%s%N)
for _ in 1 2 3; do
  status=$(bomb "$WORK/bomb-batch.json" /api/v1/predict/batch)
  [[ $status == 413 ]] || fail "a batch of 256 bombs got $status, not 413: $(cat "$WORK/bomb-reply.json")"
done
check "3 batches of 256 bombs: 413 each, $(( ($(date +%s%N) - batch_start) / 3000000 )) ms per batch through the edge"
"$PY" scripts/upload-to-page.py --url "$EDGE/" --file "$WORK/bomb-palette.png" \
  --expect "the image is empty" || fail "the page did not answer a bomb-sized upload with a sentence"
"$PY" -c 'from PIL import Image; import sys; Image.new("L", (6000, 5000)).save(sys.argv[1])' "$WORK/huge.png"
"$PY" scripts/upload-to-page.py --url "$EDGE/" --file "$WORK/huge.png" \
  --expect "the page accepts at most 24 megapixels" || fail "the page did not refuse a 30-megapixel upload"
check "the page shrank a 16-megapixel bomb (the backend: empty drawing) and refused a 30-megapixel upload"
load_rc=0
wait "$load_pid" || load_rc=$?
python3 - "$WORK/hostile-load.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"  HOSTILE: {s['failures']} failed of {s['requests']} normal requests ({s['failure_ratio']:.3%}) "
      f"during the bombs; p99 {s['latency_ms']['p99']} ms")
PY
[[ $load_rc -eq 0 ]] || { cat "$WORK/hostile-load.out"; fail "more than 0.1 % of the normal requests failed during the bombs"; }
restarts_after=$(restarts)
[[ "$restarts_before" == "$restarts_after" ]] || fail "containers restarted during the bombs: $(diff <(echo "$restarts_before") <(echo "$restarts_after") | tr '\n' ' ')"
backends_healthy || fail "a backend is not healthy after the bombs"
check "no container restarted ($(wc -l <<<"$restarts_after") containers, restart counts and start times unchanged); every replica healthy"

step "Production's alerts reach someone: the page stops, the page-down alert reaches the Slack stand-in"
PROMETHEUS_URL=http://127.0.0.1:${PROMETHEUS_PORT:-9090}
production_watch="up{job=\"node\"} == 1 or probe_success{job=~\"blackbox-page|blackbox-api\"} == 1"
deadline=$((SECONDS + 90))
until [[ $(prometheus_query "$PROMETHEUS_URL" "count($production_watch)") == 3 ]]; do
  [[ $SECONDS -lt $deadline ]] || fail "production's Prometheus does not see the host and both probes through the edge: $(prometheus_query "$PROMETHEUS_URL" "$production_watch")"
  sleep 3
done
cert_days=$(prometheus_query "$PROMETHEUS_URL" 'min(probe_ssl_earliest_cert_expiry{job="blackbox-page"} - time()) / 86400')
[[ -n "$cert_days" ]] || fail "the page probe reports no certificate expiry"
check "node-exporter scraped; the page and the API probed through the HTTPS edge; certificate expires in $(printf '%.1f' "$cert_days") days"
network=$(docker inspect -f '{{range $name, $_ := .NetworkSettings.Networks}}{{$name}}{{end}}' "$("${COMPOSE_ARGS[@]}" ps -q nginx)")
# The stand-in: answers "ok" as Slack does and prints every message it receives, one per line.
docker run -d --name mnist-slack-stand-in --network "$network" --network-alias slack-stand-in \
  --read-only --cap-drop ALL --user 65534 "${PYTHON_IMAGE:-python:3.11.14-slim-bookworm}" python3 -u -c '
import http.server
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        print(self.path, body.decode(), flush=True)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")
http.server.HTTPServer(("", 8080), Hook).serve_forever()
' >/dev/null
frontend=$("${COMPOSE_ARGS[@]}" ps -q frontend)
page_stopped=$SECONDS
docker stop -t 5 "$frontend" >/dev/null
deadline=$((SECONDS + 300))
# The first FIRING page-down message, read to the end of the log (a reader that stops early
# leaves docker logs a closed pipe, and under pipefail that SIGPIPE reads as "not found").
first_page_down() { docker logs mnist-slack-stand-in 2>&1 | awk '/MnistPageDown/ && /FIRING/ && !m {m = $0} END {print m}'; }
until [[ -n $(first_page_down) ]]; do
  [[ $SECONDS -lt $deadline ]] || fail "no page-down alert reached the Slack stand-in within 300 s of stopping the page"
  sleep 5
done
message=$(first_page_down)
[[ $message == *'"channel":"#mnist-alerts-production"'* && $message == *'/services/T000/B000/stack-test'* ]] \
  || fail "the page-down alert went elsewhere: $message"
check "page-down alert at the Slack stand-in (#mnist-alerts-production) $((SECONDS - page_stopped)) s after the page stopped"
docker start "$frontend" >/dev/null
wait_for_health "$frontend" 120 || fail "the page did not become healthy again"
check "the page is back and healthy"

step "Model delivery: progressive promotions (a canary analysis judged by Prometheus) under load, then a rollback"
replicas_serve() {  # version: every stable backend answers it on /ready
  local id
  for id in $("${COMPOSE_ARGS[@]}" ps -q backend); do
    [[ $(docker exec "$id" python -c 'import json, urllib.request; print(json.load(urllib.request.urlopen("http://127.0.0.1:8000/ready"))["model_version"])') == "$1" ]] || return 1
  done
}
promote_and_wait() {  # promote-model.sh arguments... then wait until the 3 replicas serve EXPECTED
  scripts/promote-model.sh "$@"
  local deadline=$((SECONDS + 90))
  until replicas_serve "$EXPECTED"; do
    [[ $SECONDS -lt $deadline ]] || { echo "the replicas do not all serve $EXPECTED"; return 1; }
    sleep 2
  done
  echo "all 3 replicas serve $EXPECTED"
}
# shellcheck source=stack-canary.sh
source "$REPO_ROOT/scripts/lib/stack-canary.sh"
check_progressive_delivery
EXPECTED=$STABLE_VERSION under_load rollback-production promote_and_wait --rollback production
[[ $LOAD_RC -eq 0 && $LOAD_FAILURES -eq 0 ]] || fail "the model rollback failed ($LOAD_FAILURES failed requests)"
check "promote-model.sh --rollback production: all 3 replicas serve $STABLE_VERSION again, 0 failed requests"

step "An alias moved by hand over MLflow's REST API (a promoter's account, no promote, no guard) to a version that says 7 to everything while declaring 0.999: the sync refuses it"
rm -rf "$WORK/liar" && mkdir -p "$WORK/liar"
LIAR_VERSION=$("$PY" - "$WORK/models/$STABLE_VERSION" "$WORK/liar" <<'PY'
import json, shutil, sys
from pathlib import Path
from mnist_testkit.misbehaving_models import constant_seven_graph, publish_graph
source, folder = Path(sys.argv[1]), Path(sys.argv[2])
shutil.copytree(source, folder / source.name)
metrics = json.loads((folder / source.name / "metadata.json").read_text())["metrics"]
print(publish_graph(folder, source.name, constant_seven_graph(), "20991231T000000Z-7e7e7e", metrics={**metrics, "test_accuracy": 0.999}))
PY
) || fail "building the lying version failed"
LIAR_REGISTERED=$(register_folder "$WORK/liar/$LIAR_VERSION")
sync_refusals() {  # the production sync's refusal counter, read inside its container
  docker exec "$("${COMPOSE_ARGS[@]}" ps -q model-sync)" python -c 'import urllib.request
for line in urllib.request.urlopen("http://127.0.0.1:9101/metrics").read().decode().splitlines():
    if line.startswith("mnist_model_sync_total{result=\"refused\"}"): print(int(float(line.split()[-1]))); break
else: print(0)'
}
move_alias_by_hand() {  # set the production alias over REST, wait for the refusal, set it back
  local before deadline=$((SECONDS + 90))
  before=$(sync_refusals)
  "$PY" -c 'import sys; from mlflow import MlflowClient; MlflowClient().set_registered_model_alias("mnist-cnn", "production", sys.argv[1])' "$LIAR_REGISTERED"
  until [[ $(sync_refusals) -gt $before ]]; do
    [[ $SECONDS -lt $deadline ]] || { echo "the sync did not refuse $LIAR_VERSION"; return 1; }
    sleep 2
  done
  replicas_serve "$STABLE_VERSION" || { echo "a replica no longer serves $STABLE_VERSION"; return 1; }
  "${COMPOSE_ARGS[@]}" logs --tail 20 model-sync | grep -F "accuracy 0.1000 on 1000 held-out digits is below 0.5" || return 1
  "$PY" -c 'import sys; from mlflow import MlflowClient; MlflowClient().set_registered_model_alias("mnist-cnn", "production", sys.argv[1])' "$STABLE_REGISTERED"
}
under_load alias-moved-by-hand move_alias_by_hand
[[ $LOAD_RC -eq 0 ]] || fail "the sync did not refuse a lying version moved into place by hand"
[[ $LOAD_FAILURES -eq 0 ]] || fail "$LOAD_FAILURES requests failed while the alias named a lying version"
# The registry's audit line for this move (not grep -q: it would close the pipe early, and pipefail
# would take the logs command's SIGPIPE for a failure).
"${COMPOSE_ARGS[@]}" logs mlflow 2>&1 \
  | grep -E "registry-audit: .*\"event\": \"alias set\", \"model\": \"mnist-cnn\", .*\"user\": \"promoter\", \"version\": \"$LIAR_REGISTERED\"" >/dev/null \
  || fail "MLflow's log does not name the account that moved the alias to version $LIAR_REGISTERED"
check "alias moved by hand (the promoter's account, on MLflow's log) to $LIAR_VERSION: refused by the sync, all 3 replicas kept $STABLE_VERSION, 0 failed requests"
