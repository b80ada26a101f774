import { loadConfig } from '@kiln/control-plane/config';
import { startKiln } from '@kiln/control-plane/server';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Sandbox } from 'e2b';
import { Redis } from 'ioredis';
import { postJson } from './http.js';
import { percentiles, sequential, type Row } from './stats.js';

const REPO_TEMPLATES = fileURLToPath(new URL('../../../templates', import.meta.url));

/**
 * Time to interactive, as public sandbox benchmarks measure it: create a sandbox, run
 * `node -v` in it, kill it, through the official E2B SDK and, beside it, through Kiln's own
 * REST API (so the protocol's own cost shows), one after another and in a burst of
 * BENCH_E2B_BURST (default 100) at once. Every flow starts from a warm pool deep enough for it.
 */
export async function benchE2b(socket: string, opts: { samples: number; burst: number }): Promise<Row[]> {
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-bench-e2b-'));
  chmodSync(dataDir, 0o755);
  const dir = join(dataDir, 'templates');
  mkdirSync(dir, { recursive: true });
  const t = JSON.parse(readFileSync(join(REPO_TEMPLATES, 'nodejs.json'), 'utf8')) as { pool: Record<string, number> };
  Object.assign(t.pool, { minIdle: opts.burst, maxSandboxes: opts.burst + 8 });
  writeFileSync(join(dir, 'nodejs.json'), JSON.stringify(t));
  const prefix = `benche2b${process.pid}`;
  const kiln = await startKiln(loadConfig({ KILN_REDIS_URL: `unix://${socket}`, KILN_REDIS_PREFIX: prefix, KILN_PORT: '0', KILN_HOST: '127.0.0.1', KILN_DATA_DIR: dataDir, KILN_TEMPLATES_DIR: dir, KILN_LOG_LEVEL: 'warn' }));
  const redis = new Redis({ path: socket });
  // No keys are configured, so any key in E2B's format passes.
  const e2b = { apiUrl: `${kiln.url}/e2b`, sandboxUrl: `${kiln.url}/e2b/sandbox`, apiKey: `e2b_${'0'.repeat(40)}` };
  Object.assign(process.env, { E2B_API_URL: e2b.apiUrl, E2B_SANDBOX_URL: e2b.sandboxUrl, E2B_API_KEY: e2b.apiKey });
  const base = `${kiln.url}/api/v1/sessions`;
  const warmUntil = async (n: number): Promise<void> => {
    for (let w = 0; w < 3000 && (await redis.llen(`${prefix}:warm:nodejs:nodejs`)) < n; w++) await new Promise((r) => setTimeout(r, 100));
  };
  const viaE2b = async (): Promise<void> => {
    const sbx = await Sandbox.create('nodejs');
    const out = await sbx.commands.run('node -v');
    if (!out.stdout.startsWith('v')) throw new Error(`node -v said ${out.stdout}`);
    await sbx.kill();
  };
  const viaRest = async (): Promise<void> => {
    const s = await postJson(base, { template: 'nodejs' });
    if (s.status !== 201) throw new Error(`create failed: ${JSON.stringify(s.body)}`);
    const run = await postJson(`${base}/${s.body.id as string}/process/run`, { command: 'node', args: ['-v'] });
    if (run.body?.exitCode !== 0) throw new Error(`node -v failed: ${JSON.stringify(run.body)}`);
    const del = await fetch(`${base}/${s.body.id as string}`, { method: 'DELETE' });
    if (del.status !== 204) throw new Error(`delete failed: ${del.status}`);
  };
  const oneByOne = async (flow: () => Promise<void>): Promise<number[]> => {
    const out: number[] = [];
    for (let i = 0; i < opts.samples; i++) {
      await warmUntil(1);
      out.push(...(await sequential(1, flow)));
    }
    return out;
  };
  const burst = async (flow: () => Promise<void>): Promise<number[]> => {
    await warmUntil(opts.burst);
    return Promise.all(
      Array.from({ length: opts.burst }, async () => {
        const t0 = performance.now();
        await flow();
        return performance.now() - t0;
      }),
    );
  };
  try {
    await sequential(3, viaE2b);
    await sequential(3, viaRest);
    const seqE2b = percentiles(await oneByOne(viaE2b));
    const seqRest = percentiles(await oneByOne(viaRest));
    const burstE2b = percentiles(await burst(viaE2b));
    const burstRest = percentiles(await burst(viaRest));
    const n = `${opts.burst} at once`;
    return [
      { name: 'E2B SDK: create → run `node -v` → kill, p50', value: seqE2b.p50, unit: 'ms', note: 'sequential; E2B 490 ms, Daytona 190 ms (their figures, over a network)' },
      { name: 'E2B SDK: create → run `node -v` → kill, p99', value: seqE2b.p99, unit: 'ms' },
      { name: 'REST: create → process/run `node -v` → delete, p50', value: seqRest.p50, unit: 'ms', note: `the same through Kiln's REST API; E2B protocol costs ${(seqE2b.p50 - seqRest.p50).toFixed(1)} ms` },
      { name: 'REST: create → process/run `node -v` → delete, p99', value: seqRest.p99, unit: 'ms' },
      { name: `E2B SDK: the same, ${n}, p50`, value: burstE2b.p50, unit: 'ms', note: 'E2B 820 ms, Daytona 370 ms for 100 (their figures)' },
      { name: `E2B SDK: the same, ${n}, p99`, value: burstE2b.p99, unit: 'ms' },
      { name: `REST: the same, ${n}, p50`, value: burstRest.p50, unit: 'ms' },
      { name: `REST: the same, ${n}, p99`, value: burstRest.p99, unit: 'ms' },
    ];
  } finally {
    redis.disconnect();
    await kiln.stop({ stopExecutors: true });
    rmSync(dataDir, { recursive: true, force: true });
  }
}
