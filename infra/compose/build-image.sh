#!/usr/bin/env bash
# Builds localhost/kiln/control-plane:<control-plane version> (compose.yaml, infra/kubernetes).
# Needs the template images first: bash images/build.sh (which also runs npm run build).
#
#   bash infra/compose/build-image.sh [docker|podman]
#
# Env: KILN_CONTROL_PLANE_IMAGE (tag), KILN_CONTROL_PLANE_BASE (default the shell template image).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILDER=${1:-${KILN_IMAGE_BUILDER:-$(command -v podman >/dev/null && echo podman || echo docker)}}
[[ "$BUILDER" == podman ]] && export CONTAINERS_CONF=${CONTAINERS_CONF:-$REPO/infra/podman/containers.conf}
VERSION=$(node "$REPO/images/lib/stage.mjs" version "$REPO/control-plane/package.json")
TAG=${KILN_CONTROL_PLANE_IMAGE:-localhost/kiln/control-plane:$VERSION}
BASE=${KILN_CONTROL_PLANE_BASE:-$(node -p 'require(process.argv[1]).image' "$REPO/templates/shell.json")}
[[ -f "$REPO/control-plane/dist/main.js" ]] || { echo "build-image: control-plane/dist missing: npm run build first" >&2; exit 1; }
"$BUILDER" image inspect "$BASE" >/dev/null 2>&1 || { echo "build-image: $BASE missing: bash images/build.sh first" >&2; exit 1; }

CTX=$REPO/.kiln/cache/images/stage/control-plane
rm -rf "$CTX"; mkdir -p "$CTX"
cp "$REPO/infra/compose/Containerfile" "$CTX/Containerfile"
node "$REPO/images/lib/stage.mjs" app "$REPO" control-plane "$CTX/app" >/dev/null
mkdir -p "$CTX/app/templates" "$CTX/app/infra/podman"
cp "$REPO"/templates/*.json "$CTX/app/templates/"
cp "$REPO/infra/podman/seccomp.json" "$CTX/app/infra/podman/seccomp.json"
# The executor image's /opt/kiln/package.json stays (the staged one only names this stage).
rm -f "$CTX/app/package.json"
"$BUILDER" build -q -f "$CTX/Containerfile" --build-arg "BASE_IMAGE=$BASE" -t "$TAG" "$CTX" >/dev/null
echo "$TAG"
