import { describe, expect, it } from 'vitest';
import { LeaseCache } from './lease-cache.js';
import type { ExecutorHandle } from '../platforms/platform.js';
import type { Lease } from './scheduler.js';

const executor: ExecutorHandle = {
  id: 'exe-1',
  template: 'nodejs',
  address: '127.0.0.1:1',
  token: '',
  host: 'local',
  labels: { deployment: 'test', template: 'nodejs', executor: 'exe-1' },
};
const lease = (sandboxId: string, template = 'nodejs', leaseUntil = Date.now() + 60_000): Lease => ({
  sandboxId,
  executor,
  template,
  runner: 'nodejs',
  startType: 'warm',
  owner: `owner-${sandboxId}`,
  leaseUntil,
});

/** A LeaseCache whose releases are recorded (the Redis side is covered by tests/src/e2e/pool.test.ts). */
function cache(holdMs = 20): { leases: LeaseCache; released: string[] } {
  const released: string[] = [];
  const leases = new LeaseCache(
    {
      release: (l: Lease, fn: string) => {
        released.push(`${l.sandboxId}:${fn}`);
        return Promise.resolve();
      },
    },
    holdMs,
  );
  return { leases, released };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('LeaseCache', () => {
  it('hands a parked lease to the next job of the same function as a hot start, newest first', () => {
    const { leases, released } = cache();
    leases.park(lease('a'), 'fn1');
    leases.park(lease('b'), 'fn1');
    expect(leases.take('nodejs', 'fn2', 1000)).toBeUndefined();
    expect(leases.take('other', 'fn1', 1000)).toBeUndefined();
    expect(leases.holds('a') && leases.holds('b')).toBe(true);
    const got = leases.take('nodejs', 'fn1', 1000);
    expect(got).toMatchObject({ sandboxId: 'b', startType: 'hot', owner: 'owner-b' });
    expect(leases.holds('b')).toBe(false);
    expect(leases.take('nodejs', 'fn1', 1000)?.sandboxId).toBe('a');
    expect(leases.take('nodejs', 'fn1', 1000)).toBeUndefined();
    expect(released).toEqual([]);
    leases.flush();
  });

  it('releases a lease with too little Redis lease time left instead of handing it on', () => {
    const { leases, released } = cache();
    leases.park(lease('short', 'nodejs', Date.now() + 500), 'fn1');
    expect(leases.take('nodejs', 'fn1', 1000)).toBeUndefined();
    expect(released).toEqual(['short:fn1']);
  });

  it('releases what nobody took after the hold, and only then', async () => {
    const { leases, released } = cache(30);
    leases.park(lease('a'), 'fn1');
    await sleep(5);
    expect(released).toEqual([]);
    await sleep(80);
    expect(released).toEqual(['a:fn1']);
    expect(leases.holds('a')).toBe(false);
    expect(leases.take('nodejs', 'fn1', 1000)).toBeUndefined();
  });

  it('flushes one template at once and leaves the others parked', () => {
    const { leases, released } = cache();
    leases.park(lease('a', 'nodejs'), 'fn1');
    leases.park(lease('b', 'python'), 'fn9');
    leases.flush('nodejs');
    expect(released).toEqual(['a:fn1']);
    expect(leases.take('python', 'fn9', 1000)?.sandboxId).toBe('b');
    leases.flush();
    expect(released).toEqual(['a:fn1']);
  });
});
