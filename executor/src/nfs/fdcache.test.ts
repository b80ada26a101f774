import { fstatSync, openSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { FdCache } from './fdcache.js';

const isOpen = (fd: number): boolean => {
  try {
    fstatSync(fd);
    return true;
  } catch {
    return false;
  }
};
const waitClosed = async (fd: number): Promise<boolean> => {
  for (let i = 0; i < 50 && isOpen(fd); i++) await new Promise((r) => setTimeout(r, 10));
  return !isOpen(fd);
};

describe('FdCache', () => {
  let cache: FdCache | undefined;
  afterEach(() => cache?.clear());

  it('evicts the least recently used idle entry and closes it', async () => {
    cache = new FdCache(2);
    const fds = [0, 1, 2].map(() => openSync('/dev/null', 'r'));
    cache.put('a', fds[0]!).release();
    cache.put('b', fds[1]!).release();
    cache.get('a')?.release(); // a is now most recent
    cache.put('c', fds[2]!).release();
    expect(cache.get('b')).toBeUndefined();
    expect(await waitClosed(fds[1]!)).toBe(true);
    expect(isOpen(fds[0]!)).toBe(true);
  });

  it('never closes an fd while it is leased', async () => {
    cache = new FdCache(1);
    const fd = openSync('/dev/null', 'r');
    const lease = cache.put('a', fd);
    cache.delete('a');
    await new Promise((r) => setTimeout(r, 30));
    expect(isOpen(fd)).toBe(true);
    lease.release();
    lease.release(); // double release is harmless
    expect(await waitClosed(fd)).toBe(true);
  });

  it('closes idle entries after the idle timeout', async () => {
    cache = new FdCache(8, 20);
    const fd = openSync('/dev/null', 'r');
    cache.put('a', fd).release();
    cache.sweep(Date.now() + 1000);
    expect(cache.size).toBe(0);
    expect(await waitClosed(fd)).toBe(true);
  });
});
