import { loadConfig } from '@kiln/control-plane/config';
import { startKiln } from '@kiln/control-plane/server';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { applyCpuPolicy } from '@kiln/control-plane/cpu-policy';
import { benchFloor } from './floor.js';
import { postJson } from './http.js';
import { startRedis } from './redis.js';
import { remoteThroughput } from './load-client.js';
import { cpuPerRequest, descendantCpu } from './proc-cpu.js';

/**
 * `node --cpu-prof tests/dist/bench/profile-hot.js`: hot-instance throughput only, beside the
 * floor in the same run, so that a change to the hot path can be profiled and A/B-tested
 * without the whole bench. PROFILE_CLIENTS (32), PROFILE_SECONDS (5), PROFILE_ROUNDS (1),
 * PROFILE_SANDBOXES (the nodejs template's size), PROFILE_FLOOR=0 to skip the floor (a profile of Kiln alone), PROFILE_CPU_POLICY=normal for an A/B of KILN_CPU_POLICY, PROFILE_LEASE_HOLD_MS for one of KILN_LEASE_HOLD_MS. LOAD_TIMINGS=1 makes the load
 * client print the mean timing breakdown of the answers (queued, schedule, handler, total).
 * Besides the control plane's CPU per request, it prints that of the executors, the sandboxes
 * (runners), Redis and the load client over the same window (proc-cpu.ts).
 */
async function main(): Promise<void> {
  const clients = Number(process.env.PROFILE_CLIENTS ?? 32);
  const durationMs = Number(process.env.PROFILE_SECONDS ?? 5) * 1000;
  const rounds = Number(process.env.PROFILE_ROUNDS ?? 1);
  const redis = await startRedis();
  // As in main.ts: the floor runs under the control plane's scheduling class (KILN_CPU_POLICY).
  const cpuPolicy = process.env.PROFILE_CPU_POLICY === 'normal' ? 'normal' : 'batch';
  if (cpuPolicy === 'batch') applyCpuPolicy('batch');
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-profile-'));
  chmodSync(dataDir, 0o755);
  // The repo's nodejs template with PROFILE_SANDBOXES as its size (the bench's sized template has 16).
  const templatesDir = join(dataDir, 'templates');
  mkdirSync(templatesDir);
  const nodejs = JSON.parse(readFileSync(fileURLToPath(new URL('../../../templates/nodejs.json', import.meta.url)), 'utf8'));
  const sandboxes = Number(process.env.PROFILE_SANDBOXES ?? nodejs.pool.maxSandboxes);
  Object.assign(nodejs.pool, { maxSandboxes: sandboxes, sandboxesPerExecutor: sandboxes });
  writeFileSync(join(templatesDir, 'nodejs.json'), JSON.stringify(nodejs));
  try {
    const kiln = await startKiln(
      loadConfig({
        KILN_REDIS_URL: `unix://${redis.socket}`,
        KILN_REDIS_PREFIX: `profile${process.pid}`,
        KILN_PORT: '0',
        KILN_HOST: '127.0.0.1',
        KILN_DATA_DIR: dataDir,
        KILN_TEMPLATES_DIR: templatesDir,
        KILN_LOG_LEVEL: 'error',
        KILN_CPU_POLICY: cpuPolicy,
        ...(process.env.PROFILE_LEASE_HOLD_MS ? { KILN_LEASE_HOLD_MS: process.env.PROFILE_LEASE_HOLD_MS } : {}),
      }),
    );
    try {
      const url = `${kiln.url}/api/v1/executions`;
      const body = { code: 'exports.handler = async (e) => ({ sum: e.a + e.b })', language: 'nodejs', event: { a: 1, b: 2 } };
      const once = async (): Promise<void> => {
        const res = await postJson(url, body);
        if (res.body?.result?.sum !== 3) throw new Error(`unexpected answer ${JSON.stringify(res.body)}`);
      };
      for (let r = 0; r < rounds; r++) {
        const floor =
          process.env.PROFILE_FLOOR === '0' ? NaN : ((await benchFloor(redis.socket, { samples: 10, durationMs, clients: [clients] })).rps.get(clients) ?? NaN);
        // CPU of this process only (the control plane): the load comes from another process.
        let cpu0 = process.cpuUsage();
        let others0 = descendantCpu();
        let t0 = performance.now();
        // Where the time goes, for the same window: the event loop of the control plane, and the
        // Redis commands every request costs (BullMQ's and the scheduler's scripts are EVALSHA).
        const stats = new Redis({ path: redis.socket });
        let elu0 = performance.eventLoopUtilization();
        const lag = monitorEventLoopDelay({ resolution: 1 });
        const rps = await remoteThroughput({ url, body, expect: { sum: 3 }, clients, warmupMs: 3000, durationMs }, () => {
          cpu0 = process.cpuUsage();
          others0 = descendantCpu();
          t0 = performance.now();
          elu0 = performance.eventLoopUtilization();
          lag.enable();
          stats.config('RESETSTAT').catch((err: unknown) => process.stderr.write(`could not reset Redis stats: ${String(err)}\n`));
        });
        lag.disable();
        const elu = performance.eventLoopUtilization(elu0);
        const requests = rps * ((performance.now() - t0) / 1000);
        const others = cpuPerRequest(others0, descendantCpu(), requests);
        const commands = [...(await stats.info('commandstats')).matchAll(/^cmdstat_(\w+):calls=(\d+),usec=(\d+)/gm)]
          .map(([, name, calls, usec]) => ({ name: name as string, calls: Number(calls), usec: Number(usec) }))
          .filter((c) => c.calls >= requests / 10)
          .sort((a, b) => b.usec - a.usec);
        await stats.quit();
        process.stdout.write(
          `control plane event loop: ${(elu.utilization * 100).toFixed(0)}% busy, delay p50 ${(lag.percentile(50) / 1e6).toFixed(2)} ms, p99 ${(lag.percentile(99) / 1e6).toFixed(2)} ms\n` +
            `CPU ms per request of the other processes: ${others}\n` +
            `redis per request: ${commands.map((c) => `${c.name} ${(c.calls / requests).toFixed(1)}× ${(c.usec / c.calls).toFixed(1)} µs`).join(', ')}\n`,
        );
        const cpu = process.cpuUsage(cpu0);
        const cpuMsPerReq = (cpu.user + cpu.system) / 1000 / (rps * ((performance.now() - t0) / 1000));
        const seq: number[] = [];
        for (let i = 0; i < 300; i++) {
          const s = performance.now();
          await once();
          seq.push(performance.now() - s);
        }
        seq.sort((a, b) => a - b);
        process.stdout.write(
          `round ${r}: kiln ${rps.toFixed(0)}/s, floor ${floor.toFixed(0)}/s, ${((rps / floor) * 100).toFixed(0)}% of floor, ` +
            `${cpuMsPerReq.toFixed(2)} ms CPU/req in this process, sequential p50 ${seq[150]?.toFixed(2)} ms, load ${(await import('node:os')).loadavg()[0]?.toFixed(2)}\n`,
        );
      }
    } finally {
      await kiln.stop({ stopExecutors: true });
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
    await redis.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`profile failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
