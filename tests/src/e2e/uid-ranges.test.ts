import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { UID_BASE, UID_BLOCK, UidRanges, UidRangesExhaustedError, type UidRange } from '@kiln/control-plane/platforms/uids/ranges';

// Against the real test Redis, each test with a hash of its own.
const clients: Redis[] = [];
const connect = (): Redis => {
  const c = new Redis({ path: inject('redisSocket') });
  clients.push(c);
  return c;
};
const freshKey = (): string => `t${randomBytes(4).toString('hex')}:host-uids`;
afterAll(async () => {
  const c = connect();
  const keys = await c.keys('t*:host-uids');
  if (keys.length) await c.del(...keys);
  for (const client of clients) client.disconnect();
});

const overlaps = (a: UidRange, b: UidRange): boolean => a.firstUid < b.firstUid + b.size && b.firstUid < a.firstUid + a.size;

describe('UidRanges', () => {
  it('never hands out overlapping ranges to concurrent claims from several control planes', async () => {
    const key = freshKey();
    // Four "control planes", each with its own connection, claiming 60 ranges of mixed sizes at once.
    const planes = [0, 1, 2, 3].map(() => new UidRanges(connect(), key));
    const claims = await Promise.all(
      Array.from({ length: 60 }, (_, i) => (planes[i % 4] as UidRanges).claim(`exe-${i}`, `dep${i % 4}`, [1, 32, 1000, 1001, 2500][i % 5] as number)),
    );
    for (let i = 0; i < claims.length; i++) {
      const a = claims[i] as UidRange;
      expect(a.firstUid).toBeGreaterThanOrEqual(UID_BASE);
      expect(a.size % UID_BLOCK).toBe(0);
      for (let j = i + 1; j < claims.length; j++) expect(overlaps(a, claims[j] as UidRange), `exe-${i} and exe-${j}`).toBe(false);
    }
    expect(claims[3]?.size).toBe(2 * UID_BLOCK);
  });

  it('gives a released range to the next executor, and only the claiming deployment can release it', async () => {
    const ranges = new UidRanges(connect(), freshKey());
    const a = await ranges.claim('exe-a', 'dep1', 16);
    const b = await ranges.claim('exe-b', 'dep1', 16);
    expect(b.firstBlock).toBe(a.firstBlock + 1);
    expect(await ranges.release('exe-a', 'dep2')).toBe(false);
    expect((await ranges.claim('exe-c', 'dep1', 16)).firstBlock).toBe(b.firstBlock + 1);
    expect(await ranges.release('exe-a', 'dep1')).toBe(true);
    expect(await ranges.release('exe-a', 'dep1')).toBe(false);
    expect(await ranges.get('exe-a')).toBeUndefined();
    expect(await ranges.claim('exe-d', 'dep1', 16)).toEqual(a);
  });

  it('keeps an executor its range when a restarted control plane claims for it again', async () => {
    const key = freshKey();
    const before = await new UidRanges(connect(), key).claim('exe-a', 'dep1', 100);
    const restarted = new UidRanges(connect(), key);
    expect(await restarted.claim('exe-a', 'dep1', 100)).toEqual(before);
    expect(await restarted.get('exe-a')).toEqual({ range: before, deployment: 'dep1' });
    expect(overlaps(await restarted.claim('exe-b', 'dep1', 100), before)).toBe(false);
    // The same id claimed by another deployment is refused, not shared.
    await expect(restarted.claim('exe-a', 'dep2', 100)).rejects.toThrow(/another deployment/);
  });

  it('skips blocks below fromBlock, and says so when the uid space is used up', async () => {
    const ranges = new UidRanges(connect(), freshKey(), 3);
    expect((await ranges.claim('exe-a', 'dep1', 10, 1)).firstBlock).toBe(1);
    await expect(ranges.claim('exe-b', 'dep1', 1500)).rejects.toBeInstanceOf(UidRangesExhaustedError);
    expect((await ranges.claim('exe-c', 'dep1', 10)).firstBlock).toBe(0);
    expect((await ranges.claim('exe-d', 'dep1', 10)).firstBlock).toBe(2);
    await expect(ranges.claim('exe-e', 'dep1', 10)).rejects.toThrow(/no free range of 10 host uids/);
  });
});
