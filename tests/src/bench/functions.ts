import { Agent, request } from 'node:http';
import { postJson } from './http.js';
import { percentiles, sequential, type Row } from './stats.js';

const agent = new Agent({ keepAlive: true, maxSockets: 64 });

/** Raw Lambda Invoke (what the AWS SDK sends), over a keep-alive connection. */
function lambdaInvoke(base: string, name: string, payload: unknown): Promise<{ status: number; body: string }> {
  const data = Buffer.from(JSON.stringify(payload));
  return new Promise((resolve, reject) => {
    const req = request(`${base}/2015-03-31/functions/${name}/invocations`, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': data.length } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(data);
  });
}

const SOURCES: Record<string, (i: number) => string> = {
  'nodejs20.x': (i) => `exports.handler = async (e) => ({ sum: e.a + e.b, v: ${i} });`,
  'python3.11': (i) => `def handler(event, context):\n    return {"sum": event["a"] + event["b"], "v": ${i}}\n`,
};

/**
 * Hot invoke through the Lambda path beside the REST executions path (same handler, same
 * run), and cold start per runtime: the first invocation of a new function version, on a
 * pre-warmed template (a new code version always needs a new instance).
 */
export async function benchFunctions(base: string, restHotP50: number, opts: { samples: number; coldSamples: number }): Promise<Row[]> {
  const rows: Row[] = [];
  const name = `bench-hot-${process.pid}`;
  const created = await postJson(`${base}/api/v1/functions`, { name, runtime: 'nodejs20.x', code: { source: SOURCES['nodejs20.x']!(0) } });
  if (created.status !== 201) throw new Error(`create failed: ${JSON.stringify(created.body)}`);
  const once = async (): Promise<void> => {
    const res = await lambdaInvoke(base, name, { a: 1, b: 2 });
    if (res.status !== 200) throw new Error(`invoke failed: ${res.status} ${res.body}`);
  };
  await sequential(200, once);
  const hot = percentiles(await sequential(opts.samples, once));
  rows.push({ name: 'lambda path: hot invoke p50', value: hot.p50, unit: 'ms', note: `${(hot.p50 / restHotP50).toFixed(2)}× REST path; target ≤ 1.5×` });
  rows.push({ name: 'lambda path: hot invoke p99', value: hot.p99, unit: 'ms' });

  for (const runtime of Object.keys(SOURCES)) {
    const fn = `bench-cold-${runtime.replace(/\W/g, '')}-${process.pid}`;
    const made = await postJson(`${base}/api/v1/functions`, { name: fn, runtime, code: { source: SOURCES[runtime]!(0) } });
    if (made.status !== 201) throw new Error(`create failed: ${JSON.stringify(made.body)}`);
    const samples: number[] = [];
    for (let i = 1; i <= opts.coldSamples; i++) {
      // A new code version: its first invocation cannot reuse an instance.
      const upd = await fetch(`${base}/api/v1/functions/${fn}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code: { source: SOURCES[runtime]!(i) } }) });
      if (!upd.ok) throw new Error(`update failed: ${await upd.text()}`);
      const t0 = performance.now();
      const res = await lambdaInvoke(base, fn, { a: 1, b: 2 });
      samples.push(performance.now() - t0);
      if (res.status !== 200 || !res.body.includes(`"v":${i}`)) throw new Error(`cold invoke failed: ${res.status} ${res.body}`);
      // Let the keeper refill the warm pool, as it would between real deployments.
      await new Promise((r) => setTimeout(r, 1200));
    }
    const p = percentiles(samples);
    rows.push({ name: `cold start (new version, first invoke) ${runtime} p50`, value: p.p50, unit: 'ms', note: 'target < 150 ms' });
  }
  return rows;
}
