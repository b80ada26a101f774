import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { trackingConnections } from './connection.js';
import { TrackedReads } from './tracked-reads.js';

/** Waits for `check` to hold, up to 10 s (invalidations and reconnections are asynchronous). */
async function until(check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('condition not reached in 10 s');
}

describe('TrackedReads (CLIENT TRACKING against the real Redis)', () => {
  const opened: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const close of opened.splice(0)) await close();
  });

  /** A cache on its own connections, a writer, this test's own key prefix, and how many reads reached Redis. */
  async function setup(maxEntries?: number) {
    const target = { socket: inject('redisSocket') };
    const { reader, invalidations } = trackingConnections(target);
    const fallback = new Redis({ path: target.socket });
    const writer = new Redis({ path: target.socket });
    const prefix = `trk${randomBytes(4).toString('hex')}`;
    // Counts what the cache asks Redis for, on either connection (the real commands still run).
    const reads = { n: 0 };
    for (const conn of [reader, fallback]) {
      const get = conn.get.bind(conn);
      const hget = conn.hget.bind(conn);
      conn.get = ((key: string) => (reads.n++, get(key)));
      conn.hget = ((key: string, field: string) => (reads.n++, hget(key, field)));
    }
    const cache = new TrackedReads(reader, invalidations, fallback, maxEntries);
    opened.push(async () => {
      await cache.close();
      const keys = await writer.keys(`${prefix}:*`);
      if (keys.length) await writer.del(...keys);
      writer.disconnect();
      fallback.disconnect();
    });
    await until(async () => (await cache.enable(), cache.active));
    return { cache, writer, reads, key: (k: string) => `${prefix}:${k}` };
  }

  it('serves a second read from memory and sees another client\'s write', async () => {
    const { cache, writer, reads, key } = await setup();
    await writer.set(key('fn'), 'v1');
    expect(await cache.get(key('fn'))).toBe('v1');
    const before = reads.n;
    expect(await cache.get(key('fn'))).toBe('v1');
    expect(reads.n).toBe(before);
    // A write by another connection (another replica) reaches the cache as an invalidation.
    await writer.set(key('fn'), 'v2');
    await until(async () => (await cache.get(key('fn'))) === 'v2');
    // A key that does not exist is cached as such, and its creation invalidates that too.
    expect(await cache.get(key('none'))).toBeNull();
    await writer.set(key('none'), 'now');
    await until(async () => (await cache.get(key('none'))) === 'now');
    // Deletes, hash fields and expiry too.
    await writer.hset(key('versions'), '1', 'a');
    expect(await cache.hget(key('versions'), '1')).toBe('a');
    await writer.hdel(key('versions'), '1');
    await until(async () => (await cache.hget(key('versions'), '1')) === null);
    await writer.set(key('ttl'), 'x', 'PX', 200);
    expect(await cache.get(key('ttl'))).toBe('x');
    await until(async () => (await cache.get(key('ttl'))) === null);
  });

  it('does not keep a read that a write overtook while it was in flight', async () => {
    const { cache, writer, reads, key } = await setup();
    await writer.set(key('fn'), 'old');
    const inFlight = cache.get(key('fn'));
    // This replica wrote the key while the read was on its way (FunctionStore forgets after its writes).
    await writer.set(key('fn'), 'new');
    cache.forget(key('fn'));
    expect(['old', 'new']).toContain(await inFlight);
    const before = reads.n;
    expect(await cache.get(key('fn'))).toBe('new');
    expect(reads.n).toBe(before + 1);
  });

  it('reads from Redis while its invalidations connection is down, and never serves what changed meanwhile', async () => {
    const { cache, writer, reads, key } = await setup();
    await writer.set(key('fn'), 'v1');
    expect(await cache.get(key('fn'))).toBe('v1');
    // Redis drops the connection the invalidations come on: whatever changes now is not heard of.
    await writer.client('KILL', 'ID', String(cache.subscriber));
    await writer.set(key('fn'), 'v2');
    await until(async () => (await cache.get(key('fn'))) === 'v2');
    // Back on: caching again, and a later write is heard of again.
    await until(() => Promise.resolve(cache.active));
    expect(await cache.get(key('fn'))).toBe('v2');
    const before = reads.n;
    expect(await cache.get(key('fn'))).toBe('v2');
    expect(reads.n).toBe(before);
    await writer.set(key('fn'), 'v3');
    await until(async () => (await cache.get(key('fn'))) === 'v3');
  });

  it('holds at most maxEntries values', async () => {
    const { cache, writer, key } = await setup(3);
    for (let i = 0; i < 6; i++) {
      await writer.set(key(`k${i}`), String(i));
      expect(await cache.get(key(`k${i}`))).toBe(String(i));
    }
    expect(cache.size).toBeLessThanOrEqual(3);
    // The evicted ones are still read right.
    expect(await cache.get(key('k0'))).toBe('0');
  });
});
