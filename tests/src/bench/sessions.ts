import { loadConfig } from '@kiln/control-plane/config';
import { startKiln } from '@kiln/control-plane/server';
import { SandboxManager } from '@kiln/executor/sandbox';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { postJson } from './http.js';
import { percentiles, sequential, type Row } from './stats.js';

const REPO_TEMPLATES = fileURLToPath(new URL('../../../templates', import.meta.url));

/** Only the nodejs template, with a warm pool deep enough for back-to-back creates. */
function templatesDir(dataDir: string, minIdle: number): string {
  const dir = join(dataDir, 'templates');
  mkdirSync(dir, { recursive: true });
  for (const file of readdirSync(REPO_TEMPLATES).filter((f) => f === 'nodejs.json')) {
    const t = JSON.parse(readFileSync(join(REPO_TEMPLATES, file), 'utf8')) as { pool: Record<string, number> };
    t.pool.minIdle = minIdle;
    writeFileSync(join(dir, file), JSON.stringify(t));
  }
  return dir;
}

function exitOf(argv: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0] as string, argv.slice(1), { stdio: 'ignore', env: { PATH: '/usr/bin:/bin' } });
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? -1));
  });
}

/**
 * The floor under process/run: the same launcher chain the executor uses (prlimit → setpriv
 * → nsenter into a live sandbox as uid 1000) spawned straight from this script, no gRPC, no HTTP.
 */
async function nsenterFloor(samples: number): Promise<number> {
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-bench-nsenter-'));
  chmodSync(dataDir, 0o755);
  const manager = new SandboxManager({ dataDir, maxSandboxes: 1, runners: ['nodejs'], uidBase: 210_000, bwrapPath: 'bwrap' });
  await manager.init();
  try {
    const sandbox = await manager.create('bench-floor', 'nodejs', { memoryMB: 256, cpus: 1, diskMB: 512, maxProcesses: 256, maxOpenFiles: 1024 }, false);
    const argv = ['/usr/bin/prlimit', '--nproc=256', '--', '/usr/bin/setpriv', '--no-new-privs', '--', '/usr/bin/nsenter', `--target=${sandbox.runnerPid}`, '--user', '--mount', '--pid', '--net', '--ipc', '--uts', '--setuid=1000', '--setgid=1000', '--root', '--wd', '/usr/bin/true'];
    const once = async (): Promise<void> => {
      if ((await exitOf(argv)) !== 0) throw new Error('nsenter floor command failed');
    };
    await sequential(20, once);
    return percentiles(await sequential(samples, once)).p50;
  } finally {
    await manager.destroyAll();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function del(url: string): Promise<void> {
  const res = await fetch(url, { method: 'DELETE' });
  if (res.status !== 204) throw new Error(`DELETE ${url}: ${res.status}`);
}

/** Session create from a warm pool and process/run of `true`, each beside its floor. */
export async function benchSessions(socket: string, opts: { samples: number }): Promise<Row[]> {
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-bench-'));
  chmodSync(dataDir, 0o755);
  const prefix = `benchses${process.pid}`;
  const minIdle = 4;
  const kiln = await startKiln(
    loadConfig({ KILN_REDIS_URL: `unix://${socket}`, KILN_REDIS_PREFIX: prefix, KILN_PORT: '0', KILN_HOST: '127.0.0.1', KILN_DATA_DIR: dataDir, KILN_TEMPLATES_DIR: templatesDir(dataDir, minIdle), KILN_LOG_LEVEL: 'warn' }),
  );
  const redis = new Redis({ path: socket });
  try {
    const base = `${kiln.url}/api/v1/sessions`;
    const warm = `${prefix}:warm:nodejs:nodejs`;
    const samples = Math.min(opts.samples, 30);
    const createMs: number[] = [];
    for (let i = 0; i < samples; i++) {
      // Time only creates that find a warm sandbox: wait for the keeper to refill the pool.
      for (let w = 0; w < 500 && (await redis.llen(warm)) < 1; w++) await new Promise((r) => setTimeout(r, 20));
      const t0 = performance.now();
      const res = await postJson(base, { template: 'nodejs' });
      createMs.push(performance.now() - t0);
      if (res.status !== 201) throw new Error(`create failed: ${JSON.stringify(res.body)}`);
      await del(`${base}/${res.body.id as string}`);
    }
    const create = percentiles(createMs);

    const session = await postJson(base, { template: 'nodejs' });
    const id = session.body.id as string;
    const run = async (): Promise<void> => {
      const res = await postJson(`${base}/${id}/process/run`, { command: 'true' });
      if (res.body?.exitCode !== 0) throw new Error(`process/run failed: ${JSON.stringify(res.body)}`);
    };
    await sequential(50, run);
    const runLat = percentiles(await sequential(opts.samples, run));
    await del(`${base}/${id}`);
    const floor = await nsenterFloor(opts.samples);
    return [
      { name: 'sessions: create from a warm pool, p50', value: create.p50, unit: 'ms', note: 'target < 15 ms' },
      { name: 'sessions: create from a warm pool, p99', value: create.p99, unit: 'ms' },
      { name: 'sessions: process/run `true`, p50', value: runLat.p50, unit: 'ms', note: `${(runLat.p50 / floor).toFixed(2)}× floor; target < 10 ms` },
      { name: 'sessions: process/run `true`, p99', value: runLat.p99, unit: 'ms' },
      { name: 'floor: prlimit+setpriv+nsenter `true` into a sandbox, p50', value: floor, unit: 'ms', note: 'spawned from a script' },
    ];
  } finally {
    redis.disconnect();
    await kiln.stop({ stopExecutors: true });
    rmSync(dataDir, { recursive: true, force: true });
  }
}
