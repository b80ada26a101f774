import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it } from 'vitest';
import type { Kiln } from '@kiln/control-plane/server';
import { testDirs } from '../support/kiln.js';
import { call, removeDeployment, startReplica, until } from '../support/faults.js';

/**
 * A control plane restarted on the same Redis, with ids of sandboxes that no longer exist on its
 * warm list (left by a graceful stop that stopped the executors, or by a crash): the keeper
 * counts only sandboxes that exist, so `minIdle` is refilled and the first call is warm.
 */
describe('a control plane restarted with stale warm ids', () => {
  const prefix = `t${randomBytes(4).toString('hex')}`;
  const dirs = testDirs({ nodejs: { pool: { minIdle: 1, maxSandboxes: 4, sandboxesPerExecutor: 4 } }, python: null, shell: null, provided: null });
  const redis = new Redis({ path: inject('redisSocket') });
  const warmList = `${prefix}:warm:nodejs:nodejs`;
  let kiln: Kiln | undefined;
  afterAll(async () => {
    await removeDeployment(prefix, dirs, redis, async () => {
      await kiln?.stop({ stopExecutors: true });
    });
  });

  /** Idle warm sandbox records of the template (what really exists, whatever the list says). */
  const warmRecords = async (): Promise<number> => {
    const ids = await redis.smembers(`${prefix}:sbxs:nodejs`);
    let n = 0;
    for (const id of ids) {
      const [state, fn] = await redis.hmget(`${prefix}:sbx:${id}`, 'state', 'fn');
      if (state === 'idle' && !fn) n++;
    }
    return n;
  };

  it('refills minIdle after the restart and serves the first call warm', { timeout: 45_000 }, async () => {
    kiln = await startReplica(prefix, dirs);
    await until('a warm sandbox', async () => (await warmRecords()) === 1);
    // Graceful stop of the only replica: executors stopped, records forgotten.
    await kiln.stop({ stopExecutors: true });
    kiln = undefined;
    // And what a crash between two steps leaves: ids with no record at all.
    await redis.lpush(warmList, 'sbx-gone-1', 'sbx-gone-2');

    kiln = await startReplica(prefix, dirs);
    // Ids without a record are gone from the list at once (start-up reconciliation)...
    for (const id of await redis.lrange(warmList, 0, -1)) expect(await redis.exists(`${prefix}:sbx:${id}`), `stale id ${id} on the warm list`).toBe(1);
    // ...and the keeper boots the real one.
    await until('minIdle warm sandboxes after the restart', async () => (await warmRecords()) === 1, 15_000);
    const first = await call(kiln.url, 'POST', '/api/v1/executions', { code: 'exports.handler = async () => "first"', language: 'nodejs' });
    expect(first.body.result, JSON.stringify(first.body)).toBe('first');
    expect(first.body.startType).toBe('warm');
  });
});
