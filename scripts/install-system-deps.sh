#!/usr/bin/env bash
# Install the Debian packages the test suite and benchmarks use, when they are missing.
# Idempotent: does nothing (and needs no network) when everything is already there.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/install-system-deps.sh [--help]

Installs, with apt-get, the system packages that `make test` and `make bench` need:
  make, git        build and version tooling
  chromium         the real browser the frontend tests drive (Playwright, never its own download)
  npm              installs axe-core for the accessibility test (skipped when npm is already on PATH)
  wrk              HTTP load generator for `make bench`
  prometheus, prometheus-alertmanager, prometheus-nginx-exporter, prometheus-node-exporter,
  prometheus-blackbox-exporter, nginx
                   the real monitoring tools the monitoring tests run (promtool, amtool included)
  postgresql       the real PostgreSQL the MLflow tests start (as a non-root user, on 127.0.0.1)
  openssh-server, openssh-client
                   the real sshd (on 127.0.0.1 only) that `make test-stack` deploys through; the
                   package's own service is not started
Runs apt-get only when something is missing. Needs root (or sudo) for that.
USAGE
}

[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }

PACKAGES=(make git chromium wrk prometheus prometheus-alertmanager prometheus-nginx-exporter
  prometheus-node-exporter prometheus-blackbox-exporter nginx postgresql openssh-server openssh-client)
# Node may come from elsewhere (nvm, a base image); only ask Debian for it when it is missing.
command -v npm >/dev/null || PACKAGES+=(npm)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "system packages: all present (${PACKAGES[*]})"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null \
    || { echo "error: missing system packages (${missing[*]}): run 'scripts/install-system-deps.sh' as root" >&2; exit 1; }
  SUDO="sudo"
fi
echo "system packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Packages must not start their services here (sshd on every interface, nginx on port 80): the
# tests start their own, on 127.0.0.1. policy-rc.d is Debian's switch for that, kept if present.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
  trap '$SUDO rm -f "$policy"' EXIT
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
