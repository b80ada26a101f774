#!/usr/bin/env bash
# The whole test suite against real components (Redis, bubblewrap, ...). Called by `npm test`
# after scripts/setup.sh. Ends with a plain "N passed, N failed" line for CI.
set -uo pipefail
cd "$(dirname "$0")/.."
echo "lint: eslint (type-aware)"
npx --no-install eslint . || lint_failed=1
report=$(mktemp -t kiln-vitest-XXXXXX.json)
npx --no-install vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@"
status=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "$report" 2>/dev/null || echo "tests: 0 passed, 1 failed"
rm -f "$report"
if [ "${lint_failed:-0}" = 1 ]; then echo "lint failed (see above)"; [ $status -eq 0 ] && status=1; fi
exit $status
