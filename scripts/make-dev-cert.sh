#!/usr/bin/env bash
# A self-signed TLS certificate for running the production overlay locally. Real deployments
# mount real certificates at the same place (TLS_CERT_DIR, files tls.crt and tls.key).
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x

DIR=nginx/certs
HOST=localhost
DAYS=30
FORCE=0

usage() {
  cat <<'USAGE'
Usage: scripts/make-dev-cert.sh [--dir DIR] [--host NAME] [--days N] [--force]

Writes DIR/tls.crt and DIR/tls.key (default nginx/certs, git-ignored): a self-signed certificate
for NAME (default localhost, plus 127.0.0.1), valid N days (default 30). Keeps an existing pair
unless --force. Browsers will warn: it is for local use only.
USAGE
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --dir) DIR=${2:?--dir needs a value}; shift ;;
    --host) HOST=${2:?--host needs a value}; shift ;;
    --days) DAYS=${2:?--days needs a value}; shift ;;
    --force) FORCE=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

command -v openssl >/dev/null || { echo "error: openssl is not installed" >&2; exit 1; }
if [[ $FORCE -eq 0 && -s "$DIR/tls.crt" && -s "$DIR/tls.key" ]]; then
  echo "TLS certificate: $DIR/tls.crt exists (use --force to replace it)"
  exit 0
fi
mkdir -p "$DIR"
openssl req -x509 -newkey rsa:2048 -sha256 -nodes -days "$DAYS" \
  -subj "/CN=$HOST" -addext "subjectAltName=DNS:$HOST,IP:127.0.0.1" \
  -keyout "$DIR/tls.key" -out "$DIR/tls.crt" 2>/dev/null
# nginx runs as a non-root user in its container: it must be able to read the key.
chmod 644 "$DIR/tls.crt" "$DIR/tls.key"
echo "TLS certificate: wrote $DIR/tls.crt and $DIR/tls.key for $HOST (self-signed, $DAYS days)"
