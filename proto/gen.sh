#!/usr/bin/env bash
# Regenerates proto/src/gen from the .proto files. Offline: buf compiles the protos itself
# and ts-proto runs as a local plugin, so no protoc download is needed.
set -euo pipefail
cd "$(dirname "$0")"
rm -rf src/gen
../node_modules/.bin/buf generate
