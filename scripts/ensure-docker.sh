#!/usr/bin/env bash
# Make a Docker engine and Compose available for `make test-stack`: installs Debian's docker.io,
# docker-compose (v1) and debootstrap when missing, and starts dockerd when none answers.
# Reuses an engine that is already running. Needs root (or sudo) only for what it must change.
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x

if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then
  echo "Usage: scripts/ensure-docker.sh [--install-only]"
  echo "Installs docker.io, docker-compose and debootstrap when missing, then starts dockerd unless"
  echo "an engine already answers (log: /var/log/mnist-dockerd.log). --install-only skips the start."
  exit 0
fi
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null; then
  missing+=(docker-compose)
fi
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "docker: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[[ "${1:-}" == --install-only ]] && exit 0

if docker info >/dev/null 2>&1; then
  echo "docker: engine $(docker version -f '{{.Server.Version}}') already running"
  exit 0
fi
echo "docker: starting dockerd (log: /var/log/mnist-dockerd.log)"
$SUDO sh -c 'nohup dockerd >/var/log/mnist-dockerd.log 2>&1 &'
for _ in $(seq 60); do
  if [[ -S /var/run/docker.sock ]] && docker info >/dev/null 2>&1; then
    echo "docker: engine $(docker version -f '{{.Server.Version}}') ready"
    exit 0
  fi
  sleep 1
done
echo "error: dockerd did not answer within 60 s; last log lines:" >&2
tail -20 /var/log/mnist-dockerd.log >&2
exit 1
