import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { monitorRedis } from '../support/redis-monitor.js';

/**
 * Issue 27: what a finished invocation writes besides BullMQ's own record (its history entry, its
 * function's figures, its template's start latency and its release from the tenant's executions
 * quota) goes to Redis as one transaction, not one round trip per owner. Read off Redis's
 * MONITOR stream: the commands of one MULTI run together at EXEC, so they show as one block.
 */
describe('the writes of a finished invocation', () => {
  let k: TestKiln;

  beforeAll(async () => {
    k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 1, maxSandboxes: 2, sandboxesPerExecutor: 2 } }, python: null, provided: null, shell: null } });
    const created = await k.call('POST', '/api/v1/functions', { name: 'writes', runtime: 'nodejs20.x', code: { source: 'exports.handler = async (e) => ({ n: e.n })' } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    // Hot from here: the sandbox has loaded the function.
    expect((await k.call('POST', '/api/v1/functions/writes/invocations', { n: 0 })).status).toBe(200);
  });
  afterAll(async () => {
    await k?.call('DELETE', '/api/v1/functions/writes');
    await k?.stop();
  });

  it('sends history, function figures, start latency and the quota release in one MULTI', async () => {
    const monitor = await monitorRedis(inject('redisSocket'));
    const seen = monitor.seen;
    try {
      const res = await k.call('POST', '/api/v1/functions/writes/invocations', { n: 1 });
      expect([res.status, res.body.status, res.body.result], JSON.stringify(res.body)).toEqual([200, 'succeeded', { n: 1 }]);
      const id = res.body.id as string;
      const isOurs = (a: string[]): boolean => (a[1] ?? '').startsWith(`${k.prefix}:`) && /^(xhist|fnstats|startlat|quota:inflight)/.test((a[1] ?? '').slice(k.prefix.length + 1));
      // Written just after the reply: wait until the quota release (the last of them) shows.
      for (let i = 0; i < 200 && !seen.some((a) => a[0]?.toLowerCase() === 'zrem' && a[2] === `nodejs/${id}`); i++) await new Promise((r) => setTimeout(r, 25));
      const at = seen.findIndex((a) => a[0]?.toLowerCase() === 'zadd' && (a[1] ?? '').startsWith(`${k.prefix}:xhist:`) && (a[3] ?? '').includes(id));
      expect(at, 'the history entry of the invocation was written').toBeGreaterThan(0);
      // The transaction: from its MULTI to its EXEC, nothing of another client in between.
      let start = at;
      while (start > 0 && seen[start - 1]?.[0]?.toLowerCase() !== 'multi') start--;
      let end = at;
      while (end < seen.length && seen[end]?.[0]?.toLowerCase() !== 'exec') end++;
      expect(seen[start - 1]?.[0]?.toLowerCase()).toBe('multi');
      expect(seen[end]?.[0]?.toLowerCase()).toBe('exec');
      const block = seen.slice(start, end);
      const kinds = block.filter(isOurs).map((a) => `${a[0]?.toLowerCase()} ${(a[1] ?? '').slice(k.prefix.length + 1).split(':')[0]}`);
      expect(kinds).toEqual(expect.arrayContaining(['zadd xhist', 'zadd fnstats', 'hincrby startlat', 'zrem quota']));
      expect(block.some((a) => a[0]?.toLowerCase() === 'zrem' && a[2] === `nodejs/${id}`)).toBe(true);
      // And none of them in a round trip of its own (the quota's admission, in its script, reads and adds the member before the run).
      const admission = (a: string[]): boolean => (a[1] ?? '').startsWith(`${k.prefix}:quota:`) && a[0]?.toLowerCase() !== 'zrem';
      const outside = seen.filter((a, i) => (i < start || i >= end) && isOurs(a) && !admission(a) && a.some((v) => v.includes(id)));
      expect(outside, JSON.stringify({ outside, block })).toEqual([]);
    } finally {
      monitor.stop();
    }
  });
});
