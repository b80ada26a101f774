import { describe, expect, it } from 'vitest';
import { TokenBuckets } from './rate-limit.js';

describe('TokenBuckets', () => {
  it('lets a key burst up to its rate, then keeps it to the rate as time passes', () => {
    const b = new TokenBuckets();
    const granted = (at: number, n: number) => Array.from({ length: n }, () => b.take('acme', 5, at)).filter(Boolean).length;
    expect(granted(0, 10)).toBe(5);
    // 200 ms later: one more token (5 per second).
    expect(granted(200, 3)).toBe(1);
    // A long pause refills to one second's worth, never more.
    expect(granted(60_000, 10)).toBe(5);
  });

  it('keeps keys apart, and grants nothing at rate 0', () => {
    const b = new TokenBuckets();
    for (let i = 0; i < 3; i++) expect(b.take('a', 3, 0)).toBe(true);
    expect(b.take('a', 3, 0)).toBe(false);
    expect(b.take('b', 3, 0)).toBe(true);
    expect(b.take('c', 0, 0)).toBe(false);
  });
});
