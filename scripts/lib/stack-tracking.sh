# The tracking-server checks of scripts/test-stack.sh (sourced): a tiny training run from the
# host logs into an environment's MLflow, the registered version is read back through the server,
# a database restart loses nothing; the backup/restore round trip (registry and people's
# corrections together) is check_backup_round_trip in stack-feedback.sh.
# shellcheck shell=bash

# registered_versions: "<registry version>=<model version id>" lines of mnist-cnn, through the
# server at MLFLOW_TRACKING_URI with the exported credentials.
registered_versions() {
  "$PY" - <<'PY'
from mlflow import MlflowClient
for v in sorted(MlflowClient().search_model_versions("name='mnist-cnn'"), key=lambda v: int(v.version)):
    print(f"{v.version}={v.tags['model_version_id']}")
PY
}

# as_training COMMAND...: COMMAND with MLflow's training account (it registers, it moves no alias).
as_training() {
  MLFLOW_TRACKING_USERNAME=training MLFLOW_TRACKING_PASSWORD=$(cat "$MLFLOW_TRAINING_PASSWORD_FILE") "$@"
}

# register_folder DIR: registers a published version in the server at MLFLOW_TRACKING_URI (once),
# as CI does, with the training account; prints its registry version number.
register_folder() {
  local output
  output=$(as_training "$PY" -m mnist_training.register "$1" | grep -E ' (registered as|was already) ') || fail "registering $1 failed"
  echo "    | $output" >&2
  awk '{print $NF}' <<<"$output"
}

# wait_for_health CONTAINER SECONDS: on time-out, prints the container's state and its last log lines.
wait_for_health() {
  local deadline=$((SECONDS + $2))
  [[ -n $1 ]] || { echo "  no such container (compose ps found none)" >&2; return 1; }
  until [[ $(docker inspect -f '{{.State.Health.Status}}' "$1") == healthy ]]; do
    if [[ $SECONDS -ge $deadline ]]; then
      docker inspect -f '  {{.Name}}: {{.State.Status}}, health {{.State.Health.Status}}, restarts {{.RestartCount}}' "$1" >&2
      docker logs --tail 30 "$1" 2>&1 | sed 's/^/    | /' >&2
      return 1
    fi
    sleep 2
  done
}

# check_tracking_server ENV: needs PY, WORK, STACK_STEPS, STABLE_VERSION, the MLflow password files
# and COMPOSE_ARGS for ENV. Leaves MLFLOW_TRACKING_URI and the promoter's credentials exported for
# the steps after it (they promote); registrations use the training account (register_folder).
check_tracking_server() {
  local env=$1 service state versions
  for service in postgres mlflow; do
    state=$(docker inspect -f '{{.State.Health.Status}}' "$("${COMPOSE_ARGS[@]}" ps -q "$service")")
    [[ $state == healthy ]] || fail "$env's $service is $state"
  done
  export MLFLOW_TRACKING_URI=http://127.0.0.1:${MLFLOW_PORT:-5000} MLFLOW_TRACKING_USERNAME=promoter
  MLFLOW_TRACKING_PASSWORD=$(cat "$MLFLOW_PROMOTER_PASSWORD_FILE")
  export MLFLOW_TRACKING_PASSWORD MLFLOW_DISABLE_TELEMETRY=true
  [[ $(curl -s -o /dev/null -w '%{http_code}' "$MLFLOW_TRACKING_URI/api/2.0/mlflow/experiments/search?max_results=1") == 401 ]] \
    || fail "$env's MLflow answers without a login"
  check "$env: postgres and mlflow healthy; the API wants a login (401 without one)"

  if [[ $STACK_STEPS == all ]]; then
    # Small and quick (~12 s): what matters here is that a run logs into the server and registers.
    rm -rf "$WORK/tracked-models"
    (cd training && as_training "$PY" -m mnist_training --params \
      "export.models_dir=$WORK/tracked-models,data.limit=500,train.epochs=3,train.batch_size=32,train.learning_rate=0.01,train.architecture.channels=8,train.augmentation.enabled=false,evaluate.enforce_floors=false") \
      >"$WORK/train-tracked.log" 2>&1 || { tail -20 "$WORK/train-tracked.log"; fail "a tiny run could not log into $env's MLflow"; }
    versions=$(registered_versions)
    [[ "$versions" == "1=$(cat "$WORK/tracked-models/CURRENT")" ]] || fail "the registry of $env holds '$versions'"
    check "a tiny run from the host logged into $env's MLflow and registered mnist-cnn version $versions"
  else  # the training run is the same whatever Compose started the server: a registration will do
    register_folder "$WORK/models/$STABLE_VERSION" >/dev/null
    versions=$(registered_versions)
    [[ "$versions" == "1=$STABLE_VERSION" ]] || fail "the registry of $env holds '$versions'"
    check "registered the stable version in $env's MLflow as mnist-cnn version $versions (STACK_STEPS=$STACK_STEPS: no training run)"
  fi

  check_accounts "$env"

  "${COMPOSE_ARGS[@]}" restart postgres >/dev/null 2>&1
  [[ $(registered_versions) == "$versions" ]] || fail "after 'restart postgres' the registry holds '$(registered_versions)'"
  check "restart postgres: the registry still holds $versions, read through the server"

}

# check_accounts ENV: what each of the server's accounts may do to version 1, as its role says.
check_accounts() {
  local refused
  refused=$(as_training "$PY" -c 'from mlflow import MlflowClient
try:
    MlflowClient().set_registered_model_alias("mnist-cnn", "production", "1")
except Exception as error:
    print(error)' 2>&1)
  [[ $refused == *"only promoters may ('training' is not in MLFLOW_PROMOTERS)"* ]] \
    || fail "$env's MLflow let the training account move an alias: $refused"
  refused=$(MLFLOW_TRACKING_USERNAME=model-sync MLFLOW_TRACKING_PASSWORD=$(cat "$MLFLOW_SYNC_PASSWORD_FILE") "$PY" -c '
from mlflow import MlflowClient
try:
    MlflowClient().set_model_version_tag("mnist-cnn", "1", "note", "x")
except Exception as error:
    print(error)' 2>&1)
  [[ $refused == *"user 'model-sync' may only read the registry"* ]] || fail "$env's MLflow let the sync's account write: $refused"
  "${COMPOSE_ARGS[@]}" logs mlflow 2>&1 | grep 'registry-audit: .*"event": "refused".*"user": "training"' >/dev/null \
    || fail "$env's MLflow did not log the refused alias move"
  check "$env's accounts: training registered version 1 but may not move an alias (403), model-sync may only read; the refusal is on MLflow's log"
}
