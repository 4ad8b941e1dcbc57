#!/usr/bin/env bash
# Random secrets for a throw-away stack (the stack test, CI's integration job): an API key for
# clients, the drawing page's own key, an admin key, a Grafana password, MLflow's passwords (its
# admin, its training, promoter and model-sync accounts, its database), the feedback token key and
# database password, and a Slack webhook URL that goes nowhere. Prints the variables to export.
set -euo pipefail
DIR=${1:?usage: scripts/make-local-secrets.sh DIR}
mkdir -p "$DIR"
python3 -c 'import secrets; print(secrets.token_urlsafe(24))' >"$DIR/api_keys"
python3 -c 'import secrets; print(secrets.token_urlsafe(24))' >"$DIR/frontend_api_key"
python3 -c 'import secrets; print(secrets.token_urlsafe(16))' >"$DIR/grafana_password"
python3 -c 'import secrets; print(secrets.token_urlsafe(24))' >"$DIR/mlflow_password"
for role in training promoter sync; do
  python3 -c 'import secrets; print(secrets.token_urlsafe(24))' >"$DIR/mlflow_${role}_password"
done
python3 -c 'import secrets; print(secrets.token_urlsafe(24))' >"$DIR/postgres_password"
python3 -c 'import secrets; print(secrets.token_urlsafe(24))' >"$DIR/admin_api_key"
python3 -c 'import secrets; print(secrets.token_urlsafe(32))' >"$DIR/feedback_key"
python3 -c 'import secrets; print(secrets.token_urlsafe(24))' >"$DIR/feedback_db_password"
echo "http://127.0.0.1:9/no-slack-for-a-throw-away-stack" >"$DIR/slack_webhook"
chmod 644 "$DIR"/api_keys "$DIR"/frontend_api_key "$DIR"/grafana_password "$DIR"/slack_webhook \
  "$DIR"/mlflow_password "$DIR"/mlflow_training_password "$DIR"/mlflow_promoter_password \
  "$DIR"/mlflow_sync_password "$DIR"/postgres_password "$DIR"/admin_api_key "$DIR"/feedback_key \
  "$DIR"/feedback_db_password   # containers read them as non-root
cat <<VARS
API_KEYS_FILE=$DIR/api_keys
FRONTEND_API_KEY_FILE=$DIR/frontend_api_key
GRAFANA_PASSWORD_FILE=$DIR/grafana_password
SLACK_WEBHOOK_FILE=$DIR/slack_webhook
MLFLOW_PASSWORD_FILE=$DIR/mlflow_password
MLFLOW_TRAINING_PASSWORD_FILE=$DIR/mlflow_training_password
MLFLOW_PROMOTER_PASSWORD_FILE=$DIR/mlflow_promoter_password
MLFLOW_SYNC_PASSWORD_FILE=$DIR/mlflow_sync_password
POSTGRES_PASSWORD_FILE=$DIR/postgres_password
ADMIN_API_KEY_FILE=$DIR/admin_api_key
FEEDBACK_KEY_FILE=$DIR/feedback_key
FEEDBACK_DB_PASSWORD_FILE=$DIR/feedback_db_password
VARS
