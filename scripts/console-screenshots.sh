#!/usr/bin/env bash
# Makes the README's screenshots of the web console (docs/screenshots/*.png): the console's
# end-to-end test takes one of each page as it goes, into the directory KILN_SCREENSHOTS_DIR
# names (a temporary one otherwise). Same set-up as `npm test` (Chromium, the console build).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p docs/screenshots
KILN_SCREENSHOTS_DIR=docs/screenshots npx --no-install vitest run tests/src/e2e/console.test.ts
