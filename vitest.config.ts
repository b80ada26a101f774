import { defineConfig } from 'vitest/config';

// Tests run against the compiled packages (dist/) so that the executor processes
// they spawn are the same code the tests import. `npm test` builds first.
export default defineConfig({
  test: {
    include: ['{control-plane,executor,tests}/src/**/*.test.ts', 'executor/runtime/test/**/*.test.ts'],
    globalSetup: ['tests/src/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2,
  },
});
