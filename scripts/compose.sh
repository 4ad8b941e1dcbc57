#!/usr/bin/env bash
# Run any Compose command against one environment's files and project, with v2 or v1:
#   scripts/compose.sh staging ps        scripts/compose.sh production logs -f nginx
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x
# shellcheck source=lib/compose.sh
source "$(dirname "$0")/lib/compose.sh"
# shellcheck source=lib/deploy-record.sh
source "$(dirname "$0")/lib/deploy-record.sh"

usage() {
  echo "Usage: scripts/compose.sh <dev|staging|production> <compose command> [args...]"
  echo "Runs docker compose (v2) or docker-compose (v1) with docker-compose.yml + docker-compose.<env>.yml,"
  echo "project mnist-<env>. Secret paths that a command does not read may stay unset. The image tag,"
  echo "repository and (production) pool default to what scripts/deploy.sh last deployed."
}
[[ "${1:-}" == -h || "${1:-}" == --help ]] && { usage; exit 0; }
[[ $# -ge 2 ]] || { usage >&2; exit 2; }
env=$1
shift
case "$1" in
  up|run|create|config) ;;   # these read the secrets: missing ones must fail fast
  *) placeholder_secrets ;;
esac
export COMPOSE_PROFILES=${COMPOSE_PROFILES-$(default_profiles "$env")}
is_environment "$env" || die "unknown environment '$env' (one of: ${ENVIRONMENTS[*]})"
live_deployment_settings "${DEPLOY_STATE_DIR:-$REPO_ROOT/.deploy}" "$env"
compose_for "$env"
exec "${COMPOSE_ARGS[@]}" "$@"
