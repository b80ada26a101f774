import { loadConfig } from '@kiln/control-plane/config';
import { startKiln } from '@kiln/control-plane/server';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { unmountBelow } from '../../../executor/dist/sandbox/mounts.js';
import { postJson } from './http.js';
import { percentiles, type Row } from './stats.js';

/** Longer than the 300 ms between samples, so that the mounted-volume samples find it mounted. */
const IDLE_UNMOUNT_MS = 1_500;
const REPO_TEMPLATES = fileURLToPath(new URL('../../../templates', import.meta.url));

async function ok(res: Promise<{ status: number; body: any }>, want: number, what: string): Promise<any> {
  const r = await res;
  if (r.status !== want) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/**
 * What a volume costs a session (REST, whole stack): a session with a volume boots its own
 * sandbox (README "Volumes"), so its create is compared with a create from the warm pool in the
 * same run; the first mount of a new volume adds its mkfs; and sequential writes into a volume are
 * compared with the same writes into the session's /workspace (both ext4 images on loop devices).
 */
export async function benchVolumes(socket: string, opts: { samples: number }): Promise<Row[]> {
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-bench-volumes-'));
  chmodSync(dataDir, 0o755);
  const templates = join(dataDir, 'templates');
  mkdirSync(templates, { recursive: true });
  const t = JSON.parse(readFileSync(join(REPO_TEMPLATES, 'nodejs.json'), 'utf8')) as { pool: Record<string, number>; resources: Record<string, number> };
  Object.assign(t.pool, { minIdle: 2, sandboxesPerExecutor: 8 });
  Object.assign(t.resources, { diskMB: 1024 });
  writeFileSync(join(templates, 'nodejs.json'), JSON.stringify(t));
  const kiln = await startKiln(
    loadConfig({ KILN_REDIS_URL: `unix://${socket}`, KILN_REDIS_PREFIX: `benchvol${process.pid}`, KILN_PORT: '0', KILN_HOST: '127.0.0.1', KILN_DATA_DIR: dataDir, KILN_TEMPLATES_DIR: templates, KILN_LOG_LEVEL: 'warn', KILN_VOLUME_IDLE_UNMOUNT_MS: String(IDLE_UNMOUNT_MS) }),
  );
  const base = `${kiln.url}/api/v1`;
  const timed = async (fn: () => Promise<unknown>): Promise<number> => {
    const t0 = performance.now();
    await fn();
    return performance.now() - t0;
  };
  const createAndDelete = async (body: Record<string, unknown>): Promise<number> => {
    let id = '';
    const ms = await timed(async () => (id = (await ok(postJson(`${base}/sessions`, { template: 'nodejs', ...body }), 201, 'create')).id as string));
    await fetch(`${base}/sessions/${id}`, { method: 'DELETE' });
    // The pool refills between samples, so each warm create finds a warm sandbox.
    await new Promise((r) => setTimeout(r, 300));
    return ms;
  };
  try {
    const n = Math.max(5, Math.min(opts.samples, 20));
    const bench = (await ok(postJson(`${base}/volumes`, { name: 'bench', sizeMB: 512 }), 201, 'volume')) as { id: string; tenant: string };
    const mnt = join(dataDir, 'volumes', createHash('sha256').update(bench.tenant).digest('hex').slice(0, 32), bench.id, 'mnt');
    await createAndDelete({ volumes: [{ name: 'bench', path: '/mnt/v' }] });
    const warm: number[] = [];
    const withVolume: number[] = [];
    for (let i = 0; i < n; i++) {
      warm.push(await createAndDelete({}));
      withVolume.push(await createAndDelete({ volumes: [{ name: 'bench', path: '/mnt/v' }] }));
    }
    // The same create once the idle clock has unmounted the volume: its image is mounted again.
    const remount: number[] = [];
    for (let i = 0; i < Math.min(n, 5); i++) {
      const until = Date.now() + 60_000;
      while (readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === mnt)) {
        if (Date.now() > until) throw new Error('the bench volume was not unmounted while idle');
        await new Promise((r) => setTimeout(r, 100));
      }
      remount.push(await createAndDelete({ volumes: [{ name: 'bench', path: '/mnt/v' }] }));
    }
    const first: number[] = [];
    for (let i = 0; i < 3; i++) {
      await ok(postJson(`${base}/volumes`, { name: `fresh${i}`, sizeMB: 512 }), 201, 'volume');
      first.push(await createAndDelete({ volumes: [{ name: `fresh${i}`, path: '/mnt/v' }] }));
    }
    const s = (await ok(postJson(`${base}/sessions`, { template: 'nodejs', volumes: [{ name: 'bench', path: '/mnt/v' }] }), 201, 'create')).id as string;
    const write = async (dir: string): Promise<number> => {
      const r = await ok(postJson(`${base}/sessions/${s}/process/run`, { command: 'sh', args: ['-c', `dd if=/dev/zero of=${dir}/f bs=1M count=256 conv=fsync 2>&1 | tail -1; rm ${dir}/f`], timeoutMs: 120_000 }), 200, 'dd');
      const m = /([\d.]+) s,/.exec(r.stdout as string);
      return 256 / Number(m?.[1] ?? NaN);
    };
    const ws: number[] = [];
    const vol: number[] = [];
    for (let i = 0; i < 3; i++) {
      ws.push(await write('/workspace'));
      vol.push(await write('/mnt/v'));
    }
    await fetch(`${base}/sessions/${s}`, { method: 'DELETE' });
    const p = (xs: number[]) => percentiles(xs).p50;
    return [
      { name: 'baseline: session create from the warm pool (+delete), p50', value: p(warm), unit: 'ms' },
      { name: 'session create with a volume (a cold boot), p50', value: p(withVolume), unit: 'ms', note: `${(p(withVolume) / p(warm)).toFixed(1)}× baseline` },
      { name: 'session create with a volume unmounted while idle (mounted again), p50', value: p(remount), unit: 'ms', note: `${(p(remount) / p(withVolume)).toFixed(2)}× a create whose volume is mounted` },
      { name: 'session create with a new 512 MB volume (mkfs), p50 of 3', value: p(first), unit: 'ms', note: `${(p(first) / p(warm)).toFixed(1)}× baseline` },
      { name: 'baseline: 256 MB sequential write to /workspace (fsync), p50 of 3', value: p(ws), unit: 'MB/s' },
      { name: '256 MB sequential write to a volume (fsync), p50 of 3', value: p(vol), unit: 'MB/s', note: `${(p(vol) / p(ws)).toFixed(2)}× baseline` },
    ];
  } finally {
    await kiln.stop({ stopExecutors: true });
    await unmountBelow(dataDir);
    rmSync(dataDir, { recursive: true, force: true });
  }
}
