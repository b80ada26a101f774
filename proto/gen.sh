#!/usr/bin/env bash
# Regenerates proto/src/gen from the .proto files. Offline: buf compiles the protos itself
# and the code generators (ts-proto, protoc-gen-es) run as local plugins, so no protoc
# download is needed.
set -euo pipefail
cd "$(dirname "$0")"
rm -rf src/gen
../node_modules/.bin/buf generate --path kiln
../node_modules/.bin/buf generate --template buf.gen.e2b.yaml --path e2b
