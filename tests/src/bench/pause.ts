import { loadConfig } from '@kiln/control-plane/config';
import { startKiln } from '@kiln/control-plane/server';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { postJson } from './http.js';
import { percentiles, sequential, type Row } from './stats.js';

const REPO_TEMPLATES = fileURLToPath(new URL('../../../templates', import.meta.url));
const GB = 1024 * 1024 * 1024;

/** The nodejs template with room for a 1 GB allocation and a warm pool deep enough for a fork ×10. */
function templatesDir(dataDir: string): string {
  const dir = join(dataDir, 'templates');
  mkdirSync(dir, { recursive: true });
  const t = JSON.parse(readFileSync(join(REPO_TEMPLATES, 'nodejs.json'), 'utf8')) as { pool: Record<string, number>; resources: Record<string, number> };
  Object.assign(t.pool, { minIdle: 12, sandboxesPerExecutor: 16 });
  Object.assign(t.resources, { memoryMB: 1536, diskMB: 1024 });
  writeFileSync(join(dir, 'nodejs.json'), JSON.stringify(t));
  return dir;
}

async function ok(res: Promise<{ status: number; body: any }>, want: number, what: string): Promise<any> {
  const r = await res;
  if (r.status !== want) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

async function del(url: string): Promise<void> {
  const res = await fetch(url, { method: 'DELETE' });
  if (res.status !== 204) throw new Error(`DELETE ${url}: ${res.status}`);
}

/**
 * Pause and resume latency (REST, whole stack) of an idle Node session and of one holding a 1 GB
 * Buffer; snapshot and restore of a 100 MB workspace; fork ×10. The baseline of each is measured
 * in the same run: process/run `true` on the same session (the cheapest sandbox round trip) for
 * pause/resume, and a session create from the warm pool for restore and fork. E2B's published
 * figures (about 4 s per GB to pause a Firecracker VM, about 1 s to resume) are the anchor.
 */
export async function benchPause(socket: string, opts: { samples: number }): Promise<Row[]> {
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-bench-pause-'));
  chmodSync(dataDir, 0o755);
  const prefix = `benchpause${process.pid}`;
  const kiln = await startKiln(
    loadConfig({
      KILN_REDIS_URL: `unix://${socket}`,
      KILN_REDIS_PREFIX: prefix,
      KILN_PORT: '0',
      KILN_HOST: '127.0.0.1',
      KILN_DATA_DIR: dataDir,
      KILN_TEMPLATES_DIR: templatesDir(dataDir),
      KILN_LOG_LEVEL: 'warn',
      KILN_SESSION_HIBERNATE_AFTER_MS: '0',
    }),
  );
  const base = `${kiln.url}/api/v1/sessions`;
  const made: string[] = [];
  const session = async (body: Record<string, unknown> = {}): Promise<string> => {
    const s = await ok(postJson(base, { template: 'nodejs', timeoutMs: 3_600_000, ...body }), 201, 'create');
    made.push(s.id as string);
    return s.id as string;
  };
  const sh = (id: string, script: string) => ok(postJson(`${base}/${id}/process/run`, { command: 'sh', args: ['-c', script], timeoutMs: 600_000 }), 200, 'process/run');
  const timed = async (fn: () => Promise<unknown>): Promise<number> => {
    const t0 = performance.now();
    await fn();
    return performance.now() - t0;
  };
  /** p50 of `n` pause/resume pairs, each timed on its own. */
  const pauseResume = async (id: string, n: number): Promise<{ pause: number; resume: number }> => {
    const pause: number[] = [];
    const resume: number[] = [];
    for (let i = 0; i < n; i++) {
      pause.push(await timed(() => ok(postJson(`${base}/${id}/pause`, {}), 200, 'pause')));
      resume.push(await timed(() => ok(postJson(`${base}/${id}/resume`, {}), 200, 'resume')));
    }
    return { pause: percentiles(pause).p50, resume: percentiles(resume).p50 };
  };
  try {
    const idle = await session();
    const run = () => ok(postJson(`${base}/${idle}/process/run`, { command: 'true' }), 200, 'run true');
    await sequential(20, run);
    const floor = percentiles(await sequential(Math.min(opts.samples, 100), run)).p50;
    await ok(postJson(`${base}/${idle}/processes`, { command: 'node', args: ['-e', 'setInterval(() => {}, 1000)'] }), 201, 'idle node');
    const idleLat = await pauseResume(idle, 20);

    const big = await session();
    await ok(postJson(`${base}/${big}/processes`, { command: 'node', args: ['-e', 'globalThis.b = Buffer.alloc(1024 ** 3, 1); setInterval(() => {}, 1000)'] }), 201, '1 GB node');
    let held = 0;
    for (let i = 0; i < 600 && held < GB; i++) {
      held = ((await ok(fetch(`${base}/${big}/usage`).then(async (r) => ({ status: r.status, body: await r.json() })), 200, 'usage')) as { memoryBytes: number }).memoryBytes;
      if (held < GB) await new Promise((r) => setTimeout(r, 100));
    }
    if (held < GB) throw new Error(`the 1 GB session holds only ${held} bytes`);
    const bigLat = await pauseResume(big, 10);

    const createMs: number[] = [];
    for (let i = 0; i < 5; i++) {
      createMs.push(await timed(async () => del(`${base}/${await session()}`)));
      made.pop();
    }
    const create = percentiles(createMs).p50;

    const ws = await session();
    await sh(ws, 'head -c 100M /dev/urandom > /workspace/big.bin');
    const snapMs: number[] = [];
    const restoreMs: number[] = [];
    for (let i = 0; i < 3; i++) {
      let snap = '';
      snapMs.push(await timed(async () => (snap = (await ok(postJson(`${base}/${ws}/snapshots`, { name: `bench-${i}` }), 201, 'snapshot')).id as string)));
      restoreMs.push(await timed(async () => made.push((await ok(postJson(base, { fromSnapshot: snap, timeoutMs: 3_600_000 }), 201, 'fromSnapshot')).id as string)));
      await del(`${base}/${made.pop() as string}`);
      await fetch(`${kiln.url}/api/v1/snapshots/${snap}`, { method: 'DELETE' });
    }

    const small = await session();
    await sh(small, 'head -c 1M /dev/urandom > /workspace/seed.bin');
    let forked: string[] = [];
    const forkMs = await timed(async () => (forked = ((await ok(postJson(`${base}/${small}/fork`, { count: 10 }), 201, 'fork')).sessions as Array<{ id: string }>).map((s) => s.id)));
    for (const id of forked) await del(`${base}/${id}`);

    const ratio = (v: number, b: number) => `${(v / b).toFixed(1)}× baseline`;
    return [
      { name: 'baseline: process/run `true` on a session, p50', value: floor, unit: 'ms' },
      { name: 'pause: idle Node session, p50', value: idleLat.pause, unit: 'ms', note: ratio(idleLat.pause, floor) },
      { name: 'resume: idle Node session, p50', value: idleLat.resume, unit: 'ms', note: ratio(idleLat.resume, floor) },
      { name: 'pause: session holding 1 GB, p50', value: bigLat.pause, unit: 'ms', note: `${ratio(bigLat.pause, floor)}; E2B ~4000 ms/GB` },
      { name: 'resume: session holding 1 GB, p50', value: bigLat.resume, unit: 'ms', note: `${ratio(bigLat.resume, floor)}; E2B ~1000 ms` },
      { name: 'baseline: session create from the warm pool (+delete), p50', value: create, unit: 'ms' },
      { name: 'snapshot of a 100 MB workspace, p50 of 3', value: percentiles(snapMs).p50, unit: 'ms', note: ratio(percentiles(snapMs).p50, create) },
      { name: 'session from a 100 MB snapshot, p50 of 3', value: percentiles(restoreMs).p50, unit: 'ms', note: ratio(percentiles(restoreMs).p50, create) },
      { name: 'fork ×10 of a 1 MB workspace', value: forkMs, unit: 'ms', note: `${ratio(forkMs, create * 10)} (10 creates)` },
    ];
  } finally {
    for (const id of made) await fetch(`${base}/${id}`, { method: 'DELETE' });
    await kiln.stop({ stopExecutors: true });
    rmSync(dataDir, { recursive: true, force: true });
  }
}
