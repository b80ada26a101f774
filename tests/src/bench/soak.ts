import { loadConfig } from '@kiln/control-plane/config';
import { startKiln } from '@kiln/control-plane/server';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runSoak } from '../support/soak.js';
import { percentiles, type Row } from './stats.js';

const NODEJS_TEMPLATE = fileURLToPath(new URL('../../../templates/nodejs.json', import.meta.url));

/**
 * The long soak (issue 17's fault scenario): 30 requests a second, open loop, for
 * BENCH_SOAK_SECONDS (default 300), mixing hot, warm/cold and asynchronous calls with idempotency
 * keys, on one executor of 8 sandboxes. The counts must all be 0 (tests/src/faults/soak.test.ts
 * asserts the same over 15 s); the latency is the synchronous calls', beside the hot p50 floor.
 */
export async function benchSoak(socket: string, floor: { p50: number }): Promise<Row[]> {
  const seconds = Number(process.env.BENCH_SOAK_SECONDS ?? 300);
  const rate = 30;
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-bench-soak-'));
  chmodSync(dataDir, 0o755);
  const templates = join(dataDir, 'templates');
  mkdirSync(templates);
  const t = JSON.parse(readFileSync(NODEJS_TEMPLATE, 'utf8')) as { pool: Record<string, number> };
  Object.assign(t.pool, { minIdle: 2, maxSandboxes: 8, sandboxesPerExecutor: 8 });
  writeFileSync(join(templates, 'nodejs.json'), JSON.stringify(t));
  const kiln = await startKiln(
    loadConfig({ KILN_REDIS_URL: `unix://${socket}`, KILN_REDIS_PREFIX: `soak${process.pid}`, KILN_PORT: '0', KILN_HOST: '127.0.0.1', KILN_DATA_DIR: dataDir, KILN_TEMPLATES_DIR: templates, KILN_LOG_LEVEL: 'warn' }),
  );
  try {
    const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
      const res = await fetch(kiln.url + path, { method, headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // not JSON: the text is the body
      }
      return { status: res.status, body: parsed as any };
    };
    const r = await runSoak({ url: kiln.url, call, seconds, rate, drainMs: 60_000 });
    const lat = percentiles(r.syncLatencyMs);
    const zero = (n: number): string => (n === 0 ? 'must be 0: ok' : 'must be 0: FAILED');
    return [
      { name: `soak: requests (${rate}/s for ${seconds} s, open loop)`, value: r.total, unit: 'req' },
      { name: 'soak: synchronous calls failed', value: r.syncFailures.length, unit: 'req', note: zero(r.syncFailures.length) + (r.syncFailures[0] ? ` e.g. ${r.syncFailures[0]}` : '') },
      { name: 'soak: asynchronous submissions refused', value: r.refused.length, unit: 'req', note: zero(r.refused.length) },
      { name: 'soak: asynchronous invocations lost', value: r.lost.length, unit: 'req', note: zero(r.lost.length) },
      { name: 'soak: asynchronous invocations stuck', value: r.stuck.length, unit: 'req', note: zero(r.stuck.length) },
      { name: 'soak: invocations run twice (starts - requests)', value: r.starts - r.total, unit: 'req', note: zero(r.starts - r.total) },
      { name: 'soak: sandboxes busy + jobs queued after the drain', value: r.busyAfter + r.queuedAfter, unit: '', note: zero(r.busyAfter + r.queuedAfter) },
      { name: 'soak: synchronous call p50', value: lat.p50, unit: 'ms', note: `${(lat.p50 / floor.p50).toFixed(2)}× floor (mixed hot, warm and cold starts)` },
      { name: 'soak: synchronous call p99', value: lat.p99, unit: 'ms' },
    ];
  } finally {
    await kiln.stop({ stopExecutors: true });
    rmSync(dataDir, { recursive: true, force: true });
  }
}
