import { loadConfig } from '@kiln/control-plane/config';
import { startKiln } from '@kiln/control-plane/server';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { postJson } from './http.js';
import { percentiles, type Row } from './stats.js';

const REPO_TEMPLATES = fileURLToPath(new URL('../../../templates', import.meta.url));
const DATA_MB = 64;

async function ok(res: Promise<{ status: number; body: any }>, want: number, what: string): Promise<any> {
  const r = await res;
  if (r.status !== want) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/**
 * What a synced volume costs (volumes/synced.ts, REST, whole stack, local platform and disk blob
 * store): a sync of 64 MB of files beside `tar -c` of the same files inside the same sandbox (the
 * floor: what packing costs before anything moves), and a session create that fills those 64 MB
 * beside one with an empty synced volume (both cold boots).
 */
export async function benchSyncedVolumes(socket: string, opts: { samples: number }): Promise<Row[]> {
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-bench-synced-'));
  chmodSync(dataDir, 0o755);
  const templates = join(dataDir, 'templates');
  mkdirSync(templates, { recursive: true });
  const t = JSON.parse(readFileSync(join(REPO_TEMPLATES, 'nodejs.json'), 'utf8')) as { pool: Record<string, number>; resources: Record<string, number> };
  Object.assign(t.pool, { minIdle: 0, sandboxesPerExecutor: 8 });
  Object.assign(t.resources, { diskMB: 1024, memoryMB: 1024 });
  writeFileSync(join(templates, 'nodejs.json'), JSON.stringify(t));
  const kiln = await startKiln(
    loadConfig({ KILN_REDIS_URL: `unix://${socket}`, KILN_REDIS_PREFIX: `benchsync${process.pid}`, KILN_PORT: '0', KILN_HOST: '127.0.0.1', KILN_DATA_DIR: dataDir, KILN_TEMPLATES_DIR: templates, KILN_LOG_LEVEL: 'warn' }),
  );
  const base = `${kiln.url}/api/v1`;
  const timed = async (fn: () => Promise<unknown>): Promise<number> => {
    const t0 = performance.now();
    await fn();
    return performance.now() - t0;
  };
  const run = (id: string, line: string) => ok(postJson(`${base}/sessions/${id}/process/run`, { command: 'sh', args: ['-c', line], timeoutMs: 120_000 }), 200, 'run');
  const create = async (volume: string, readOnly: boolean): Promise<string> => (await ok(postJson(`${base}/sessions`, { template: 'nodejs', volumes: [{ name: volume, path: '/mnt/v', readOnly }] }), 201, 'create')).id as string;
  const del = (id: string) => fetch(`${base}/sessions/${id}`, { method: 'DELETE' });
  try {
    const n = Math.max(3, Math.min(opts.samples, 7));
    await ok(postJson(`${base}/volumes`, { name: 'data', sizeMB: 256, mode: 'synced' }), 201, 'volume');
    await ok(postJson(`${base}/volumes`, { name: 'empty', sizeMB: 256, mode: 'synced' }), 201, 'volume');
    const w = await create('data', false);
    await run(w, `for i in $(seq 1 ${DATA_MB / 4}); do head -c 4194304 /dev/urandom > /mnt/v/f$i; done`);
    const floor: number[] = [];
    const sync: number[] = [];
    for (let i = 0; i < n; i++) {
      floor.push(await timed(() => run(w, 'tar -c -C /mnt/v . | wc -c')));
      sync.push(await timed(() => ok(postJson(`${base}/sessions/${w}/volumes/data/sync`, {}), 200, 'sync')));
    }
    await del(w);
    const filled: number[] = [];
    const empty: number[] = [];
    for (let i = 0; i < n; i++) {
      let a = '';
      let b = '';
      empty.push(await timed(async () => (a = await create('empty', true))));
      filled.push(await timed(async () => (b = await create('data', true))));
      await del(a);
      await del(b);
    }
    const p = (xs: number[]) => percentiles(xs).p50;
    const mbps = (ms: number) => DATA_MB / (ms / 1000);
    return [
      { name: `baseline: tar -c of ${DATA_MB} MB in the sandbox, p50 of ${n}`, value: mbps(p(floor)), unit: 'MB/s' },
      { name: `sync of ${DATA_MB} MB to the blob store (REST), p50 of ${n}`, value: mbps(p(sync)), unit: 'MB/s', note: `${(p(floor) / p(sync)).toFixed(2)}× baseline` },
      { name: `baseline: create with an empty synced volume, p50 of ${n}`, value: p(empty), unit: 'ms' },
      { name: `create with a ${DATA_MB} MB synced volume (fill), p50 of ${n}`, value: p(filled), unit: 'ms', note: `${(p(filled) / p(empty)).toFixed(1)}× baseline` },
    ];
  } finally {
    await kiln.stop({ stopExecutors: true });
    rmSync(dataDir, { recursive: true, force: true });
  }
}
