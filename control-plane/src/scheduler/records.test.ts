import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import type { Keys } from '../store/keys.js';
import { luaScripts } from './lua.js';
import { BOOT_LIMIT_MS, SandboxRecords, stillHeld } from './records.js';
import { fakeExecutor, testRedis } from './test-redis.js';

const pool = { name: 'nodejs', pool: { sandboxesPerExecutor: 2, maxSandboxes: 10 } };

describe('SandboxRecords (real Redis)', () => {
  let ctx: ReturnType<typeof testRedis>;
  let redis: Redis;
  let keys: Keys;
  let records: SandboxRecords;
  beforeEach(() => {
    ctx = testRedis();
    ({ redis, keys } = ctx);
    records = new SandboxRecords(redis, keys);
  });
  afterEach(async () => {
    await ctx.cleanup();
  });

  /** Boots a sandbox on the least-loaded executor and leaves it warm; returns its id. */
  const warm = async (id: string, now = Date.now()): Promise<string> => {
    const ex = await records.reserve(pool, 'nodejs', id, `boot-${id}`, now);
    if (!ex) throw new Error('no room');
    expect(await records.booted(id, `boot-${id}`, now + 60_000)).toBe(true);
    expect(await records.release({ sandboxId: id, template: 'nodejs', runner: 'nodejs', owner: `boot-${id}` }, '', now)).toBe(true);
    return ex;
  };

  it('loads every script from its own file, named <name>-<keys>.lua', () => {
    const names = luaScripts().map((s) => `${s.command}/${s.numberOfKeys}`);
    expect(names).toEqual(expect.arrayContaining(['kilnAcquire/2', 'kilnForget/3', 'kilnDropExecutor/3', 'kilnPrune/1']));
  });

  it('leases warm, then hot after a release as an instance, and only to the owner', async () => {
    await records.addExecutor(fakeExecutor('exe-a'));
    await warm('sbx-1');
    expect(await records.warmCount('nodejs', 'nodejs')).toBe(1);
    const first = await records.acquire('nodejs', 'nodejs', 'fn1', 'owner-1', Date.now(), 10_000);
    expect(first).toEqual({ sandboxId: 'sbx-1', executorId: 'exe-a', startType: 'warm' });
    expect(await records.acquire('nodejs', 'nodejs', 'fn1', 'owner-2', Date.now(), 10_000)).toBeUndefined();
    // A stale owner cannot release (or extend) someone else's lease.
    expect(await records.release({ sandboxId: 'sbx-1', template: 'nodejs', runner: 'nodejs', owner: 'owner-2' }, 'fn1')).toBe(false);
    expect(await records.extend('sbx-1', 'owner-2', Date.now() + 99_000)).toBe(false);
    expect(await records.extend('sbx-1', 'owner-1', Date.now() + 99_000)).toBe(true);
    expect(await records.release({ sandboxId: 'sbx-1', template: 'nodejs', runner: 'nodejs', owner: 'owner-1' }, 'fn1')).toBe(true);
    expect(await records.acquire('nodejs', 'nodejs', 'fn1', 'owner-3', Date.now(), 10_000)).toMatchObject({ sandboxId: 'sbx-1', startType: 'hot' });
  });

  it('places new sandboxes on the least-loaded executor, within each executor and the template', async () => {
    await records.addExecutor(fakeExecutor('exe-a'));
    await records.addExecutor(fakeExecutor('exe-b'));
    const placed = [];
    for (let i = 0; i < 5; i++) placed.push(await records.reserve(pool, 'nodejs', `sbx-${i}`, 'o', Date.now()));
    expect(placed.slice(0, 4).sort()).toEqual(['exe-a', 'exe-a', 'exe-b', 'exe-b']);
    expect(placed[4]).toBeUndefined();
    expect((await records.executorLoad('nodejs')).map((e) => e.sandboxes)).toEqual([2, 2]);
  });

  it('forgets a sandbox from every list, so a warm count never includes it (defect 5)', async () => {
    await records.addExecutor(fakeExecutor('exe-a'));
    await warm('sbx-1');
    await warm('sbx-2');
    expect(await records.forget('nodejs', 'sbx-1')).toBe(true);
    expect(await redis.lrange(keys.warm('nodejs', 'nodejs'), 0, -1)).toEqual(['sbx-2']);
    expect(await redis.smembers(keys.sandboxes('nodejs'))).toEqual(['sbx-2']);
    expect(await records.warmCount('nodejs', 'nodejs')).toBe(1);
    expect((await records.executorLoad('nodejs'))[0]?.sandboxes).toBe(1);
    // An instance (hot list) goes from its function's list.
    const hit = await records.acquire('nodejs', 'nodejs', 'fn1', 'o', Date.now(), 10_000);
    await records.release({ sandboxId: hit?.sandboxId ?? '', template: 'nodejs', runner: 'nodejs', owner: 'o' }, 'fn1');
    expect(await redis.lrange(keys.hot('nodejs', 'fn1'), 0, -1)).toEqual(['sbx-2']);
    await records.forget('nodejs', 'sbx-2');
    expect(await redis.llen(keys.hot('nodejs', 'fn1'))).toBe(0);
    expect(await records.forget('nodejs', 'sbx-2')).toBe(false);
  });

  it('counts only real warm sandboxes, dropping stale, duplicate and misplaced ids (defect 5)', async () => {
    await records.addExecutor(fakeExecutor('exe-a'));
    await warm('sbx-1');
    // What a restart left behind: ids whose record is gone, a duplicate, a leased one.
    await redis.rpush(keys.warm('nodejs', 'nodejs'), 'sbx-gone-1', 'sbx-1', 'sbx-gone-2');
    await warm('sbx-2');
    await records.acquire('nodejs', 'nodejs', 'none', 'o', Date.now(), 10_000); // takes sbx-2 (most recent)
    await redis.rpush(keys.warm('nodejs', 'nodejs'), 'sbx-2');
    expect(await records.warmCount('nodejs', 'nodejs')).toBe(1);
    expect(await redis.lrange(keys.warm('nodejs', 'nodejs'), 0, -1)).toEqual(['sbx-1']);
    await redis.rpush(keys.hot('nodejs', 'fnX'), 'sbx-gone-3', 'sbx-1');
    expect(await records.pruneIdleLists('nodejs')).toBe(1);
    expect(await redis.exists(keys.hot('nodejs', 'fnX'))).toBe(0);
  });

  it('drops a gone executor with all its records at once, and only once', async () => {
    await records.addExecutor(fakeExecutor('exe-a'));
    await records.addExecutor(fakeExecutor('exe-b'));
    for (let i = 0; i < 4; i++) await warm(`sbx-${i}`);
    const onA = (await records.snapshot('nodejs')).filter((r) => r.executor === 'exe-a').map((r) => r.id);
    expect(onA).toHaveLength(2);
    // One of exe-a's is leased mid-boot when it dies.
    await records.forget('nodejs', onA[1] as string);
    expect(await records.reserve(pool, 'nodejs', 'sbx-booting', 'booter', Date.now())).toBe('exe-a');

    const first = await records.dropExecutor('nodejs', 'exe-a');
    expect(first.dropped).toBe(true);
    expect(first.forgotten.sort()).toEqual([onA[0], 'sbx-booting'].sort());
    expect(await records.dropExecutor('nodejs', 'exe-a')).toEqual({ dropped: false, forgotten: [] });
    expect(await records.executor('exe-a')).toBeUndefined();
    expect(await records.executorIds('nodejs')).toEqual(['exe-b']);
    expect((await records.snapshot('nodejs')).every((r) => r.executor === 'exe-b')).toBe(true);
    expect(await records.warmCount('nodejs', 'nodejs')).toBe(2);
    // The boot that was under way finds its record gone and does not bring it back.
    expect(await records.booted('sbx-booting', 'booter', Date.now() + 1000)).toBe(false);
    expect(await redis.exists(keys.sandbox('sbx-booting'))).toBe(0);
    // Nothing is placed on it any more.
    expect(await records.reserve(pool, 'nodejs', 'sbx-new', 'o', Date.now())).toBeUndefined();
  });

  it('reaps only what is still idle and past a cutoff, and reclaims only abandoned leases', async () => {
    const t0 = Date.now() - 100_000;
    await records.addExecutor(fakeExecutor('exe-a'));
    await warm('sbx-old', t0);
    const [old] = await records.snapshot('nodejs');
    expect(await records.reap(old!, t0, 0)).toBeUndefined(); // used at t0, not before it
    expect(await records.reap(old!, t0 + 1, 0)).toBe('exe-a');
    expect((await records.snapshot('nodejs'))[0]?.state).toBe('reaping');
    expect(await records.warmCount('nodejs', 'nodejs')).toBe(0);

    const now = Date.now();
    await records.reserve(pool, 'nodejs', 'sbx-stuck', 'dead-replica', now - BOOT_LIMIT_MS - 1);
    const stuck = (await records.snapshot('nodejs')).find((r) => r.id === 'sbx-stuck');
    expect(stillHeld(stuck!, now)).toBe(false);
    expect(await records.reclaim('sbx-stuck', now)).toBe('exe-a');
    await records.forget('nodejs', 'sbx-old');
    await records.reserve(pool, 'nodejs', 'sbx-fresh', 'live', now);
    const fresh = (await records.snapshot('nodejs')).find((r) => r.id === 'sbx-fresh');
    expect(stillHeld(fresh!, now)).toBe(true);
    expect(await records.reclaim('sbx-fresh', now)).toBeUndefined();
  });

  it('evicts the least recently used idle instance, never a warm sandbox', async () => {
    await records.addExecutor(fakeExecutor('exe-a', 'nodejs'));
    await warm('sbx-1', 1000);
    await warm('sbx-2', 2000);
    expect(await records.evict('nodejs', Date.now(), Date.now())).toBeUndefined();
    for (const [fn, at] of [
      ['fnA', 5000],
      ['fnB', 3000],
    ] as const) {
      const hit = await records.acquire('nodejs', 'nodejs', fn, `o-${fn}`, at, 10_000);
      await records.release({ sandboxId: hit?.sandboxId ?? '', template: 'nodejs', runner: 'nodejs', owner: `o-${fn}` }, fn, at);
    }
    const evicted = await records.evict('nodejs', Date.now(), Date.now());
    const fnB = (await records.snapshot('nodejs')).find((r) => r.id === evicted?.sandboxId);
    expect(fnB).toMatchObject({ fn: 'fnB', state: 'reaping' });
    expect(await redis.llen(keys.hot('nodejs', 'fnB'))).toBe(0);
  });
});
