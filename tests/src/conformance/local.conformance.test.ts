import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Redis } from 'ioredis';
import { inject } from 'vitest';
import { EXECUTOR_MAIN } from '@kiln/control-plane/server';
import { UidRanges } from '@kiln/control-plane/platforms/uids/ranges';
import { Keys } from '@kiln/control-plane/store/keys';
import { LocalPlatform } from '@kiln/control-plane/platforms/local';
import { conformanceTemplate, runtimeConformance } from './platform-conformance.js';

runtimeConformance('local', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-conf-local-'));
  // Sandboxes run as their own host uids, which must be able to reach their directories.
  chmodSync(dataDir, 0o755);
  const deployment = `conf${randomBytes(4).toString('hex')}`;
  // The host's real uid-range hash on the shared test Redis: ranges must not overlap those of
  // any other test's executors on this host.
  const redis = new Redis({ path: inject('redisSocket') });
  const uids = new UidRanges(redis, Keys.hostUidRanges(hostname()));
  const make = (opts: { deployment?: string } = {}) => new LocalPlatform({ deployment: opts.deployment ?? deployment, dataDir, executorMain: EXECUTOR_MAIN, uids });
  return Promise.resolve({
    template: conformanceTemplate(),
    makePlatform: make,
    cleanup: () => {
      redis.disconnect();
      rmSync(dataDir, { recursive: true, force: true });
      return Promise.resolve();
    },
  });
});
