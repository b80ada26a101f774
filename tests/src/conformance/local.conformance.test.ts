import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { EXECUTOR_MAIN } from '@kiln/control-plane/server';
import { LocalRuntime } from '@kiln/control-plane/runtimes/local';
import { conformanceTemplate, runtimeConformance } from './runtime-conformance.js';

runtimeConformance('local', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-conf-local-'));
  // Sandboxes run as their own host uids, which must be able to reach their directories.
  chmodSync(dataDir, 0o755);
  const deployment = `conf${randomBytes(4).toString('hex')}`;
  const make = (opts: { deployment?: string } = {}) => new LocalRuntime({ deployment: opts.deployment ?? deployment, dataDir, executorMain: EXECUTOR_MAIN });
  return Promise.resolve({
    template: conformanceTemplate(),
    makeRuntime: make,
    cleanup: () => Promise.resolve(rmSync(dataDir, { recursive: true, force: true })),
  });
});
