#!/usr/bin/env bash
# Compose v2 (`docker compose`) on a Debian 12 host, whose own archive only has v1 (1.29):
# fetches the docker-compose package of Debian 13 (trixie) from the host's Debian mirror, with a
# private apt configuration that leaves the host's sources untouched, and installs only its CLI
# plugin. apt checks the archive's signatures with the host's Debian keyring.
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x

usage() {
  cat <<'EOF'
Usage: scripts/install-compose-v2.sh [--config-dir DIR]

Installs the `docker compose` plugin from Debian 13's docker-compose package.
  (default)         into /usr/local/lib/docker/cli-plugins: every user's `docker compose`
  --config-dir DIR  into DIR/cli-plugins only: `docker compose` answers where DOCKER_CONFIG=DIR,
                    so v1 and v2 can be tested side by side (CI does)
Environment: DEBIAN_MIRROR (default: the first Debian archive in the host's apt sources),
             COMPOSE_V2_SUITE (default: trixie)
EOF
}

plugins_dir=/usr/local/lib/docker/cli-plugins
case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  --config-dir)
    [[ -n "${2:-}" ]] || { usage >&2; exit 2; }
    plugins_dir="$2/cli-plugins" ;;
  "") ;;
  *) echo "error: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
esac

# The host's own mirror (deb822 .sources files first, then one-line .list files), so none is guessed.
host_mirror() {
  {
    cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {print $2}'
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
      | awk '/^deb / {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; break }}'
  } | awk '!/-security/' | head -n1 || true
}
mirror=${DEBIAN_MIRROR:-$(host_mirror)}
[[ -n "$mirror" ]] || { echo "error: no Debian mirror in the apt sources; set DEBIAN_MIRROR" >&2; exit 1; }
suite=${COMPOSE_V2_SUITE:-trixie}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[[ -r "$keyring" ]] || { echo "error: $keyring is missing (apt-get install debian-archive-keyring)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
echo "deb [signed-by=$keyring] $mirror $suite main" >"$work/sources.list"
apt_private=(-o "Dir::Etc::sourcelist=$work/sources.list" -o "Dir::Etc::sourceparts=$work/none"
  -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o "APT::Sandbox::User=root")

echo "compose v2: reading $suite's package list from $mirror"
apt-get "${apt_private[@]}" update -qq
# awk reads to the end: exiting at the first match would leave apt-cache writing into a closed
# pipe, and under pipefail its SIGPIPE (141) ended this script now and then.
version=$(apt-cache "${apt_private[@]}" show docker-compose | awk '/^Version:/ && !v {v = $2} END {print v}')
[[ "$version" == 2.* ]] || { echo "error: $suite's docker-compose is '${version:-absent}', not v2" >&2; exit 1; }
(cd "$work" && apt-get "${apt_private[@]}" download -qq "docker-compose=$version")
dpkg-deb -x "$work"/docker-compose_*.deb "$work/root"

SUDO=""
[[ -w "$(dirname "$plugins_dir")" || -w "$plugins_dir" || $(id -u) -eq 0 ]] || SUDO="sudo"
$SUDO mkdir -p "$plugins_dir"
$SUDO install -m 0755 "$work/root/usr/libexec/docker/cli-plugins/docker-compose" "$plugins_dir/docker-compose"
installed=$("$plugins_dir/docker-compose" version --short)
echo "compose v2: $installed installed in $plugins_dir"
