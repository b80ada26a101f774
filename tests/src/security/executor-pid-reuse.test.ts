import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { EXECUTOR_MAIN } from '@kiln/control-plane/server';
import { LocalPlatform } from '@kiln/control-plane/platforms/local';
import { UidRanges } from '@kiln/control-plane/platforms/uids/ranges';
import { Keys } from '@kiln/control-plane/store/keys';
import { alive } from '../support/faults.js';

/**
 * Executors' state files now outlive a SIGTERM stop (executors are left running for the next
 * control plane), so they may outlive a reboot or a container restart too, after which a file's
 * pid can belong to any process. The local platform adopts and signals only a pid that runs the
 * executor's entry point: a state file naming an unrelated live process (here a `sleep` of ours)
 * is neither listed nor killed by `stop`.
 */
describe('a local executor state file whose pid is now another process', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-pid-reuse-'));
  chmodSync(dataDir, 0o755);
  const deployment = `pid${randomBytes(4).toString('hex')}`;
  const redis = new Redis({ path: inject('redisSocket') });
  const bystander = spawn('sleep', ['300'], { stdio: 'ignore' });
  afterAll(() => {
    if (bystander.exitCode === null) bystander.kill('SIGKILL');
    redis.disconnect();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('is neither adopted nor signalled', async () => {
    const id = `exe-${randomBytes(4).toString('hex')}`;
    mkdirSync(join(dataDir, 'executors'), { recursive: true });
    const record = { id, template: 'nodejs', address: '127.0.0.1:1', token: 'x', host: 'local', labels: { deployment, template: 'nodejs', executor: id }, pid: bystander.pid };
    writeFileSync(join(dataDir, 'executors', `${id}.json`), JSON.stringify(record), { mode: 0o600 });
    const platform = new LocalPlatform({ deployment, dataDir, executorMain: EXECUTOR_MAIN, uids: new UidRanges(redis, Keys.hostUidRanges(hostname())) });
    expect(await platform.list()).toEqual([]);
    await platform.stop(id);
    expect(alive(bystander.pid as number)).toBe(true);
    await platform.close();
  });
});
