import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { runSoak } from '../support/soak.js';

/**
 * A short soak: 30 requests a second, open loop (a new request every 33 ms whether or not the
 * last one answered), for SOAK_SECONDS, mixing synchronous calls of a hot function, new code
 * (warm and cold starts) and asynchronous calls with idempotency keys. Counts what a long run
 * would reveal: lost or stuck invocations, one run twice, sandboxes left leased, queues not
 * drained (support/soak.ts). The five-minute soak is `BENCH_ONLY=soak npm run bench`; this
 * bounds it to seconds.
 */
const SOAK_SECONDS = 15;
const RATE_PER_SECOND = 30;

describe('a soak at 30 requests a second', () => {
  let k: TestKiln;
  beforeAll(async () => {
    k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 2, maxSandboxes: 8, sandboxesPerExecutor: 8 } }, python: null, shell: null, provided: null } });
  });
  afterAll(async () => {
    await k?.stop();
  });

  it('loses, duplicates and strands nothing, and leaves the pool idle', { timeout: 90_000 }, async () => {
    const r = await runSoak({ url: k.url, call: (...args) => k.call(...args), seconds: SOAK_SECONDS, rate: RATE_PER_SECOND });
    expect(r.syncFailures).toEqual([]);
    expect(r.refused).toEqual([]);
    expect(r.stuck).toEqual([]);
    expect(r.lost).toEqual([]);
    // Run once each: one start per request (a duplicate would be a second start); nothing left
    // leased or queued; one executor served it all.
    expect({ starts: r.starts, busy: r.busyAfter, queued: r.queuedAfter, executors: r.executors }).toEqual({ starts: r.total, busy: 0, queued: 0, executors: 1 });
  });
});
