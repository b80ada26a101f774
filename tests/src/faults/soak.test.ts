import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

/**
 * A short soak: 30 requests a second, open loop (a new request every 33 ms whether or not the
 * last one answered), for SOAK_SECONDS, mixing synchronous calls of a hot function, new code
 * (warm and cold starts) and asynchronous calls with idempotency keys. Counts what a long run
 * would reveal: lost or stuck invocations, one run twice, sandboxes left leased, queues not
 * drained. The full five-minute soak is `npm run bench` territory; this bounds it to seconds.
 */
const SOAK_SECONDS = 15;
const RATE_PER_SECOND = 30;
const FINAL = ['succeeded', 'failed', 'timeout'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The value of one Prometheus sample (0 when absent). */
function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

describe('a soak at 30 requests a second', () => {
  let k: TestKiln;
  beforeAll(async () => {
    k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 2, maxSandboxes: 8, sandboxesPerExecutor: 8 } }, python: null, shell: null, provided: null } });
  });
  afterAll(async () => {
    await k?.stop();
  });

  it('loses, duplicates and strands nothing, and leaves the pool idle', { timeout: 90_000 }, async () => {
    const hot = 'exports.handler = async (e) => ({ i: e.i })';
    const sync: Array<Promise<{ i: number; ok: boolean; why: string }>> = [];
    const asyncSubmits: Array<Promise<{ i: number; id: string | undefined; status: number }>> = [];
    const total = SOAK_SECONDS * RATE_PER_SECOND;
    const t0 = Date.now();
    for (let i = 0; i < total; i++) {
      // Open loop: request i goes out at its time, answered or not.
      const due = t0 + (i * 1000) / RATE_PER_SECOND;
      if (due > Date.now()) await sleep(due - Date.now());
      if (i % 3 === 2) {
        asyncSubmits.push(
          k.call('POST', '/api/v1/executions', { code: hot, language: 'nodejs', event: { i }, wait: false }, { 'Idempotency-Key': randomUUID() }).then((r) => ({ i, id: r.body?.id as string | undefined, status: r.status })),
        );
      } else {
        // Every tenth request is new code: a warm or cold start beside the hot ones.
        const code = i % 10 === 0 ? `exports.handler = async (e) => ({ i: e.i, fresh: ${i} })` : hot;
        sync.push(
          k.call('POST', '/api/v1/executions', { code, language: 'nodejs', event: { i } }).then((r) => ({
            i,
            ok: r.status === 200 && r.body?.status === 'succeeded' && r.body?.result?.i === i,
            why: `${r.status} ${JSON.stringify(r.body).slice(0, 300)}`,
          })),
        );
      }
    }
    const syncResults = await Promise.all(sync);
    expect(syncResults.filter((r) => !r.ok).map((r) => `${r.i}: ${r.why}`)).toEqual([]);
    const submitted = await Promise.all(asyncSubmits);
    expect(submitted.filter((s) => s.status !== 202 || !s.id).map((s) => `${s.i}: ${s.status}`)).toEqual([]);

    // Every asynchronous invocation finishes, with its own result.
    const records = new Map<string, { status: string; result?: { i?: number } }>();
    const deadline = Date.now() + 30_000;
    for (;;) {
      for (const s of submitted) {
        if (FINAL.includes(records.get(s.id as string)?.status ?? '')) continue;
        const r = await k.call('GET', `/api/v1/executions/${s.id as string}`);
        if (r.status === 200) records.set(s.id as string, r.body);
      }
      const open = submitted.filter((s) => !FINAL.includes(records.get(s.id as string)?.status ?? ''));
      if (open.length === 0) break;
      if (Date.now() > deadline) throw new Error(`stuck: ${open.length} asynchronous invocations not final, e.g. ${JSON.stringify(records.get(open[0]?.id as string))}`);
      await sleep(250);
    }
    const lost = submitted.filter((s) => records.get(s.id as string)?.status !== 'succeeded' || records.get(s.id as string)?.result?.i !== s.i);
    expect(lost.map((s) => `${s.i}: ${JSON.stringify(records.get(s.id as string))}`)).toEqual([]);

    // Run once each: one start per request (a duplicate would be a second start), and once the
    // leases held for the next job have gone back, no sandbox is left leased and no job queued.
    let metrics = '';
    const idleBy = Date.now() + 10_000;
    for (;;) {
      metrics = await (await fetch(`${k.url}/metrics`)).text();
      const busy = sample(metrics, 'kiln_pool_sandboxes{template="nodejs",state="busy"}');
      const queued = sample(metrics, 'kiln_queue_jobs{template="nodejs",state="waiting"}') + sample(metrics, 'kiln_queue_jobs{template="nodejs",state="active"}');
      if (busy === 0 && queued === 0) break;
      if (Date.now() > idleBy) throw new Error(`not idle after the soak: ${busy} sandboxes busy, ${queued} jobs queued or active`);
      await sleep(200);
    }
    const starts = ['hot', 'warm', 'cold'].reduce((n, t) => n + sample(metrics, `kiln_invocation_starts_total{template="nodejs",start_type="${t}"}`), 0);
    expect(starts).toBe(total);
    expect(sample(metrics, 'kiln_executors{template="nodejs"}')).toBe(1);
  });
});
