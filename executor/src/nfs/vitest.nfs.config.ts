import { defineConfig } from 'vitest/config';

// Stand-alone config for the NFS suite: same settings as the root config but
// without the repo-wide globalSetup (which builds/starts other packages).
export default defineConfig({
  test: {
    include: ['executor/src/nfs/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
