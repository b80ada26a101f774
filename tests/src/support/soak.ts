import { randomUUID } from 'node:crypto';

/**
 * An open-loop soak against a running Kiln (a new request every 1/rate s whether or not the last
 * one answered), mixing synchronous calls of a hot function, new code (warm and cold starts) and
 * asynchronous calls with idempotency keys. It counts what a long run reveals: failed or lost
 * invocations, stuck ones, one run twice, sandboxes left leased, queues not drained. The fault
 * test runs it for seconds; `npm run bench` for minutes. Nothing here asserts: callers do.
 */
export interface SoakReport {
  total: number;
  /** Synchronous calls that did not answer 200 succeeded with their own result. */
  syncFailures: string[];
  /** Asynchronous submissions not accepted (202 with an id). */
  refused: string[];
  /** Asynchronous invocations that ended otherwise than succeeded with their own result. */
  lost: string[];
  /** Asynchronous invocations not final by the deadline. */
  stuck: string[];
  /** Invocation starts counted by /metrics: one per request when nothing ran twice. */
  starts: number;
  /** After the drain: sandboxes still busy and jobs still queued (both 0 when nothing is stranded). */
  busyAfter: number;
  queuedAfter: number;
  executors: number;
  /** Latencies of the successful synchronous calls, ms. */
  syncLatencyMs: number[];
}

type Call = (method: string, path: string, body?: unknown, headers?: Record<string, string>) => Promise<{ status: number; body: any }>;

const FINAL = ['succeeded', 'failed', 'timeout'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The sum of the Prometheus samples of `series` (`name{label="value",...}`): every line of that
 * metric whose labels include the given ones, so a label added later (a tenant) does not hide
 * samples. 0 when there is none.
 */
export function sample(text: string, series: string): number {
  const [, name = '', labelText = ''] = /^([^{]+)(?:\{(.*)\})?$/.exec(series) ?? [];
  const wanted = labelText ? labelText.split(',') : [];
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([^{\s]+)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels = new Set((m[2] ?? '').split(',').filter(Boolean));
    if (wanted.every((l) => labels.has(l))) sum += Number(m[3]);
  }
  return sum;
}

export async function runSoak(opts: { url: string; call: Call; seconds: number; rate: number; template?: string; drainMs?: number }): Promise<SoakReport> {
  const template = opts.template ?? 'nodejs';
  const hot = 'exports.handler = async (e) => ({ i: e.i })';
  const sync: Array<Promise<{ i: number; ok: boolean; why: string; ms: number }>> = [];
  const asyncSubmits: Array<Promise<{ i: number; id: string | undefined; status: number }>> = [];
  const total = Math.round(opts.seconds * opts.rate);
  const t0 = Date.now();
  for (let i = 0; i < total; i++) {
    // Open loop: request i goes out at its time, answered or not.
    const due = t0 + (i * 1000) / opts.rate;
    if (due > Date.now()) await sleep(due - Date.now());
    if (i % 3 === 2) {
      asyncSubmits.push(
        opts.call('POST', '/api/v1/executions', { code: hot, language: 'nodejs', template, event: { i }, wait: false }, { 'Idempotency-Key': randomUUID() }).then((r) => ({ i, id: r.body?.id as string | undefined, status: r.status })),
      );
    } else {
      // Every tenth request is new code: a warm or cold start beside the hot ones.
      const code = i % 10 === 0 ? `exports.handler = async (e) => ({ i: e.i, fresh: ${i} })` : hot;
      const started = performance.now();
      sync.push(
        opts.call('POST', '/api/v1/executions', { code, language: 'nodejs', template, event: { i } }).then((r) => ({
          i,
          ok: r.status === 200 && r.body?.status === 'succeeded' && r.body?.result?.i === i,
          why: `${r.status} ${JSON.stringify(r.body).slice(0, 300)}`,
          ms: performance.now() - started,
        })),
      );
    }
  }
  const syncResults = await Promise.all(sync);
  const submitted = await Promise.all(asyncSubmits);

  // Every asynchronous invocation finishes, with its own result.
  const records = new Map<string, { status: string; result?: { i?: number } }>();
  const accepted = submitted.filter((s) => s.status === 202 && s.id);
  const deadline = Date.now() + (opts.drainMs ?? 30_000);
  let open = accepted;
  while (open.length > 0 && Date.now() < deadline) {
    for (const s of open) {
      const r = await opts.call('GET', `/api/v1/executions/${s.id as string}`);
      if (r.status === 200) records.set(s.id as string, r.body);
    }
    open = accepted.filter((s) => !FINAL.includes(records.get(s.id as string)?.status ?? ''));
    if (open.length) await sleep(250);
  }

  // Once the leases held for the next job have gone back, no sandbox is left leased and no job queued.
  let metrics = '';
  let busy = 0;
  let queued = 0;
  const idleBy = Date.now() + 10_000;
  for (;;) {
    metrics = await (await fetch(`${opts.url}/metrics`)).text();
    busy = sample(metrics, `kiln_pool_sandboxes{template="${template}",state="busy"}`);
    queued = sample(metrics, `kiln_queue_jobs{template="${template}",state="waiting"}`) + sample(metrics, `kiln_queue_jobs{template="${template}",state="active"}`);
    if ((busy === 0 && queued === 0) || Date.now() > idleBy) break;
    await sleep(200);
  }
  return {
    total,
    syncFailures: syncResults.filter((r) => !r.ok).map((r) => `${r.i}: ${r.why}`),
    refused: submitted.filter((s) => s.status !== 202 || !s.id).map((s) => `${s.i}: ${s.status}`),
    lost: accepted.filter((s) => FINAL.includes(records.get(s.id as string)?.status ?? '') && (records.get(s.id as string)?.status !== 'succeeded' || records.get(s.id as string)?.result?.i !== s.i)).map((s) => `${s.i}: ${JSON.stringify(records.get(s.id as string))}`),
    stuck: open.map((s) => `${s.i}: ${JSON.stringify(records.get(s.id as string))}`),
    starts: ['hot', 'warm', 'cold'].reduce((n, t) => n + sample(metrics, `kiln_invocation_starts_total{template="${template}",start_type="${t}"}`), 0),
    busyAfter: busy,
    queuedAfter: queued,
    executors: sample(metrics, `kiln_executors{template="${template}"}`),
    syncLatencyMs: syncResults.filter((r) => r.ok).map((r) => r.ms),
  };
}
