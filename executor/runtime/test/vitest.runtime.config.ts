import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Tests for the in-sandbox language runners (executor/runtime/). They spawn the
// runner files directly and under bubblewrap; no build step and no globalSetup.
// Run from the repo root:
//   npx vitest run --config executor/runtime/test/vitest.runtime.config.ts
export default defineConfig({
  test: {
    root: fileURLToPath(new URL('.', import.meta.url)),
    // KILN_RUNNER_BENCH=1 (npm run bench:runners) runs the runner benchmark instead of the tests.
    include: process.env.KILN_RUNNER_BENCH ? ['perf.bench.ts'] : ['**/*.test.ts'],
    testTimeout: process.env.KILN_RUNNER_BENCH ? 600_000 : 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2,
  },
});
