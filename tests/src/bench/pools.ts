import { spawn } from 'node:child_process';
import { loadConfig } from '@kiln/control-plane/config';
import { startKiln } from '@kiln/control-plane/server';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { benchFloor } from './floor.js';
import { postJson } from './http.js';
import { remoteThroughput } from './load-client.js';
import { percentiles, type Row } from './stats.js';

const REPO_TEMPLATES = fileURLToPath(new URL('../../../templates', import.meta.url));

/** Pool settings of the bench templates, made from the repo's nodejs template. */
const POOLS: Record<string, { minIdle: number; maxSandboxes: number; sandboxesPerExecutor: number }> = {
  nodejs: { minIdle: 2, maxSandboxes: 48, sandboxesPerExecutor: 48 },
  // Sized to a 2-core host: more runner processes than this only contend for the cores.
  sized: { minIdle: 0, maxSandboxes: 16, sandboxesPerExecutor: 16 },
  cold: { minIdle: 0, maxSandboxes: 48, sandboxesPerExecutor: 48 },
  rss: { minIdle: 1, maxSandboxes: 1, sandboxesPerExecutor: 1 },
};

function writeTemplates(dir: string): void {
  const base = JSON.parse(readFileSync(join(REPO_TEMPLATES, 'nodejs.json'), 'utf8'));
  for (const [name, pool] of Object.entries(POOLS))
    writeFileSync(join(dir, `${name}.json`), JSON.stringify({ ...base, name, pool: { ...base.pool, ...pool } }));
}

interface Memory {
  rss: number;
  pss: number;
  /** Private (unshared) pages: what this process tree alone holds. */
  uss: number;
}

/**
 * Sums of RSS, PSS and USS (MB, from smaps_rollup) of `pids`. RSS counts the node binary's
 * shared pages once per process; PSS splits them between the processes that map them, so it
 * is what one more sandbox really costs; USS counts only pages no other process maps.
 */
function memoryMB(pids: number[]): Memory {
  const kb = { rss: 0, pss: 0, uss: 0 };
  for (const p of pids) {
    try {
      const rollup = readFileSync(`/proc/${p}/smaps_rollup`, 'utf8');
      const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(rollup)?.[1] ?? 0);
      kb.rss += field('Rss');
      kb.pss += field('Pss');
      kb.uss += field('Private_Clean') + field('Private_Dirty');
    } catch {
      // gone
    }
  }
  return { rss: kb.rss / 1024, pss: kb.pss / 1024, uss: kb.uss / 1024 };
}

function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** Every process below `pid` (the executor's sandbox trees). */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const d of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(d)]);
    } catch {
      // the process ended while we looked
    }
  }
  const out: number[] = [];
  const stack = [...(children.get(pid) ?? [])];
  while (stack.length) {
    const p = stack.pop() as number;
    out.push(p);
    stack.push(...(children.get(p) ?? []));
  }
  return out;
}

/**
 * The baseline for the sandbox's memory, measured in the same run: the smallest idle Node.js
 * process this machine's node binary makes (no sandbox, no runner), after the same settling time.
 */
async function bareNodeMemoryMB(settleMs: number): Promise<Memory> {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, settleMs));
    return memoryMB([child.pid as number]);
  } finally {
    child.kill('SIGKILL');
  }
}

/**
 * Start types and pools: latency of hot, warm and cold (new sandbox) starts, throughput with
 * hot instances beside the bare-BullMQ floor, and the memory of one idle pre-booted sandbox.
 */
export async function benchPools(
  socket: string,
  floor: { rps: Map<number, number> },
  opts: { samples: number; durationMs: number; clients: number[] },
): Promise<Row[]> {
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-bench-'));
  chmodSync(dataDir, 0o755);
  const templatesDir = join(dataDir, 'templates');
  mkdirSync(templatesDir);
  writeTemplates(templatesDir);
  const prefix = `benchpools${process.pid}`;
  const kiln = await startKiln(
    loadConfig({
      KILN_REDIS_URL: `unix://${socket}`,
      KILN_REDIS_PREFIX: prefix,
      KILN_PORT: '0',
      KILN_HOST: '127.0.0.1',
      KILN_DATA_DIR: dataDir,
      KILN_TEMPLATES_DIR: templatesDir,
      KILN_LOG_LEVEL: 'error',
    }),
  );
  const redis = new Redis({ path: socket });
  const url = `${kiln.url}/api/v1/executions`;
  let seq = 0;
  const code = (): string => `exports.handler = async (e) => ({ sum: e.a + e.b, v: ${++seq} })`;
  const once = async (src: string, template: string, want?: string): Promise<number> => {
    const t0 = performance.now();
    const res = await postJson(url, { code: src, language: 'nodejs', template, event: { a: 1, b: 2 } });
    const ms = performance.now() - t0;
    if (res.body?.result?.sum !== 3) throw new Error(`unexpected answer ${JSON.stringify(res.body)}`);
    if (want && res.body.startType !== want) throw new Error(`wanted a ${want} start, got ${String(res.body.startType)}`);
    return ms;
  };
  const warmReady = async (template: string, n: number): Promise<void> => {
    while ((await redis.llen(`${prefix}:warm:${template}:nodejs`)) < n) await new Promise((r) => setTimeout(r, 20));
  };
  try {
    const rows: Row[] = [];
    // Hot: the same code again and again, after enough calls for V8 to optimise the control
    // plane, the executor and the sandbox's runner (steady state, not JIT warm-up).
    const hotCode = code();
    const hotVersion = seq;
    await once(hotCode, 'nodejs');
    for (let i = 0; i < 1000; i++) await once(hotCode, 'nodejs', 'hot');
    const hotSamples: number[] = [];
    for (let i = 0; i < opts.samples; i++) hotSamples.push(await once(hotCode, 'nodejs', 'hot'));
    const hot = percentiles(hotSamples);
    rows.push({ name: 'hot start (idle instance), REST sync, p50', value: hot.p50, unit: 'ms', note: 'target < 3 ms' });
    rows.push({ name: 'hot start, p99', value: hot.p99, unit: 'ms' });
    // Throughput with hot instances of the same function, beside the floor, on a template sized
    // to this host (16 sandboxes) and on one with 48. Before the warm and cold samples, which
    // leave instances of other functions that new instances would have to evict first. The load
    // comes from its own process; its warm-up boots the instances.
    for (const template of ['sized', 'nodejs']) {
      const size = POOLS[template]?.maxSandboxes;
      for (const c of opts.clients) {
        const rps = await remoteThroughput({
          url,
          body: { code: hotCode, language: 'nodejs', template, event: { a: 1, b: 2 } },
          expect: { sum: 3, v: hotVersion },
          clients: c,
          warmupMs: 3000,
          durationMs: opts.durationMs,
        });
        // The floor at this concurrency, measured now (once) if the run's floor did not cover it.
        if (!floor.rps.has(c)) floor.rps.set(c, (await benchFloor(socket, { samples: 10, durationMs: opts.durationMs, clients: [c] })).rps.get(c) ?? NaN);
        const f = floor.rps.get(c);
        rows.push({
          name: `hot throughput, ${c} clients, ${size} sandboxes`,
          value: rps,
          unit: 'req/s',
          note: f ? `${((rps / f) * 100).toFixed(0)}% of floor (${f.toFixed(0)}/s); target ≥ 40%` : 'no floor at this concurrency',
        });
      }
    }
    // Warm: new code each time on a pre-booted sandbox (the keeper refills between samples).
    const warmSamples: number[] = [];
    for (let i = 0; i < 30; i++) {
      await warmReady('nodejs', 2);
      warmSamples.push(await once(code(), 'nodejs', 'warm'));
    }
    const warm = percentiles(warmSamples);
    rows.push({ name: 'warm start (pre-booted sandbox, new code), p50', value: warm.p50, unit: 'ms', note: 'target < 10 ms' });
    rows.push({ name: 'warm start, p99', value: warm.p99, unit: 'ms' });
    // Cold: new code on a template with no warm pool, on a running executor (a new sandbox).
    await once(code(), 'cold');
    const coldSamples: number[] = [];
    for (let i = 0; i < 30; i++) coldSamples.push(await once(code(), 'cold', 'cold'));
    const cold = percentiles(coldSamples);
    rows.push({ name: 'cold start (new sandbox on a running executor), p50', value: cold.p50, unit: 'ms', note: 'target < 120 ms' });
    rows.push({ name: 'cold start, p99', value: cold.p99, unit: 'ms' });
    // Memory of one idle pre-booted sandbox: the 'rss' template's executor holds exactly one.
    await warmReady('rss', 1);
    const [exe] = await redis.zrange(`${prefix}:exes:rss`, 0, -1);
    const state = JSON.parse(readFileSync(join(dataDir, 'executors', `${exe ?? ''}.json`), 'utf8')) as { pid: number };
    await new Promise((r) => setTimeout(r, 500));
    // The sandbox's own tree (bwrap and below), not the executor's other children (its host helpers).
    const sandboxRoots = descendants(state.pid).filter((p) => /^(prlimit|bwrap)$/.test(commOf(p)));
    const mem = memoryMB(sandboxRoots.flatMap((p) => [p, ...descendants(p)]).filter((p, i, all) => all.indexOf(p) === i));
    const bare = await bareNodeMemoryMB(500);
    rows.push({ name: 'idle pre-booted Node.js sandbox, RSS of its process tree', value: mem.rss, unit: 'MB', note: 'target < 40 MB' });
    rows.push({
      name: 'baseline: bare idle `node` process (no sandbox), RSS',
      value: bare.rss,
      unit: 'MB',
      note: `sandbox = ${(mem.rss / bare.rss).toFixed(2)}× this`,
    });
    rows.push({ name: 'idle pre-booted Node.js sandbox, PSS of its process tree', value: mem.pss, unit: 'MB', note: 'shared pages split with the executor' });
    rows.push({
      name: 'idle pre-booted Node.js sandbox, USS (private) of its process tree',
      value: mem.uss,
      unit: 'MB',
      note: `bare node: ${bare.uss.toFixed(1)} MB`,
    });
    return rows;
  } finally {
    redis.disconnect();
    await kiln.stop({ stopExecutors: true });
    rmSync(dataDir, { recursive: true, force: true });
  }
}
