import { describe, expect, it } from 'vitest';
import { MAX_WORKERS_PER_TEMPLATE, workerShares } from './queues.js';

describe('workerShares', () => {
  it('gives a template one Worker per 16 sandboxes, sharing its capacity evenly', () => {
    expect(workerShares(1)).toEqual([1]);
    expect(workerShares(16)).toEqual([16]);
    expect(workerShares(17)).toEqual([9, 8]);
    expect(workerShares(48)).toEqual([16, 16, 16]);
    expect(workerShares(50)).toEqual([13, 13, 12, 12]);
    for (let n = 1; n <= 200; n++) expect(workerShares(n).reduce((a, b) => a + b, 0)).toBe(n);
    // Capped: a huge template gets MAX_WORKERS_PER_TEMPLATE Workers, still adding up to its size.
    expect(workerShares(4096)).toHaveLength(MAX_WORKERS_PER_TEMPLATE);
    expect(workerShares(100_000_000).reduce((a, b) => a + b, 0)).toBe(100_000_000);
  });
});
