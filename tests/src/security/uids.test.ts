import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { AgentPool } from '@kiln/control-plane/agent/client';
import { SessionAgent } from '@kiln/control-plane/agent/session-client';
import { LocalPlatform } from '@kiln/control-plane/platforms/local';
import type { ExecutorHandle } from '@kiln/control-plane/platforms/platform';
import { UidRanges } from '@kiln/control-plane/platforms/uids/ranges';
import { EXECUTOR_MAIN } from '@kiln/control-plane/server';
import { Keys } from '@kiln/control-plane/store/keys';
import { conformanceTemplate } from '../conformance/platform-conformance.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';

/** Host uids of a process, from /proc (real uid first). */
const uidOf = (pid: number): number => Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
/** How many processes on the host run with this real uid. */
const processesOf = (uid: number): number => {
  let n = 0;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (uidOf(Number(name)) === uid) n++;
    } catch {
      // exited during the scan
    }
  }
  return n;
};

const MAX_PROCESSES = 32;

/**
 * Two deployments on this host, with DIFFERENT Redis servers (neither can see the other's uid
 * claims), and a third on the first one's Redis. Their executor ids are chosen so that the old
 * scheme (uid base from the id's digits modulo 500) gave every one of them the same uids.
 */
describe('uid ranges of executors on one host', () => {
  const tag = randomBytes(3).toString('hex').replace(/\d/g, 'x');
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-sec-uids-'));
  chmodSync(dataDir, 0o755);
  const redis1 = new Redis({ path: inject('redisSocket') });
  const dir2 = mkdtempSync(join(tmpdir(), 'kiln-sec-uids-redis-'));
  let redis2Server: RedisServer;
  let redis2: Redis;
  const agents = new AgentPool();
  const template = conformanceTemplate();
  template.pool.sandboxesPerExecutor = 4;
  const runtimes: Record<'a' | 'b' | 'c', LocalPlatform> = {} as never;
  const handles: Partial<Record<'a' | 'b' | 'c', ExecutorHandle>> = {};
  const id = (d: string) => `exe-uids${tag}${d}-4242`;

  beforeAll(async () => {
    redis2Server = await startRedisServer(dir2);
    redis2 = new Redis({ path: redis2Server.socket });
    const make = (d: string, redis: Redis) =>
      new LocalPlatform({ deployment: `uids${tag}${d}`, dataDir, executorMain: EXECUTOR_MAIN, uids: new UidRanges(redis, Keys.hostUidRanges(hostname())) });
    runtimes.a = make('a', redis1);
    runtimes.b = make('b', redis2);
    runtimes.c = make('c', redis1);
    for (const d of ['a', 'b', 'c'] as const) handles[d] = await runtimes[d].start(template, id(d));
  });
  afterAll(async () => {
    agents.closeAll();
    for (const d of ['a', 'b', 'c'] as const) await runtimes[d]?.stop(id(d));
    redis1.disconnect();
    redis2?.disconnect();
    await redis2Server?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(dir2, { recursive: true, force: true });
  });

  const sandbox = async (d: 'a' | 'b' | 'c', name: string) => {
    const agent = agents.get(handles[d] as ExecutorHandle);
    const sandboxId = `sbx-${name}-${tag}`;
    const info = await agent.createSandbox({
      sandboxId,
      runner: 'nodejs',
      resources: { memoryMb: 256, diskMb: 64, maxProcesses: MAX_PROCESSES, maxOpenFiles: 256, cpu: 1 },
      allowNetwork: false,
      allowCidrs: [],
      egressPolicyJson: '',
      aheadOfTime: false,
    });
    return { info, session: new SessionAgent(agent, sandboxId) };
  };

  it('gives each executor a range of its own, also across deployments with different Redis servers', async () => {
    const ranges = (['a', 'b', 'c'] as const).map((d) => {
      const state = JSON.parse(readFileSync(join(dataDir, 'executors', `${id(d)}.json`), 'utf8')) as { uids?: { firstUid: number; size: number } };
      expect(state.uids, `executor ${d} records its uid range`).toBeDefined();
      return state.uids as { firstUid: number; size: number };
    });
    for (let i = 0; i < ranges.length; i++) {
      for (let j = i + 1; j < ranges.length; j++) {
        const [x, y] = [ranges[i], ranges[j]] as [{ firstUid: number; size: number }, { firstUid: number; size: number }];
        expect(x.firstUid < y.firstUid + y.size && y.firstUid < x.firstUid + x.size, `ranges ${i} and ${j} overlap`).toBe(false);
      }
    }
    // The first sandbox of each runs as a host uid in its executor's range, none shared.
    const uids = await Promise.all((['a', 'b', 'c'] as const).map(async (d) => uidOf((await sandbox(d, `first${d}`)).info.pid)));
    expect(new Set(uids).size).toBe(3);
    uids.forEach((uid, i) => expect(uid >= (ranges[i]?.firstUid ?? 0) && uid < (ranges[i]?.firstUid ?? 0) + (ranges[i]?.size ?? 0)).toBe(true));
  });

  it("a fork bomb in one executor's sandbox does not stop another executor's sandbox from starting processes", async () => {
    const bomber = await sandbox('a', 'bomb');
    const bomberUid = uidOf(bomber.info.pid);
    // Forks until RLIMIT_NPROC refuses, and keeps trying, holding every process it got.
    await bomber.session.start({ command: 'sh', args: ['-c', 'while :; do sleep 600 & done 2>/dev/null'] });
    // At the limit once its process count stops growing (RLIMIT_NPROC counts threads too, so
    // the count of processes levels off below MAX_PROCESSES).
    const deadline = Date.now() + 15_000;
    for (let last = -1, steady = 0; steady < 5; ) {
      if (Date.now() > deadline) throw new Error(`the fork bomb never levelled off (${processesOf(bomberUid)} processes)`);
      await new Promise((r) => setTimeout(r, 200));
      const n = processesOf(bomberUid);
      steady = n === last && n > 4 ? steady + 1 : 0;
      last = n;
    }
    for (const d of ['b', 'c'] as const) {
      // A new sandbox boots (bwrap, its init and the runner are processes too) and runs commands.
      const victim = await sandbox(d, `victim${d}`);
      const res = await victim.session.run({ command: 'sh', args: ['-c', 'for i in 1 2 3 4 5 6 7 8; do /bin/true || exit 1; done; echo forked'], timeoutMs: 10_000 });
      expect(Buffer.from(res.stdout).toString().trim(), Buffer.from(res.stderr).toString()).toBe('forked');
      expect(res.exitCode).toBe(0);
    }
  });

  it('keeps a range when a restarted control plane adopts the executor, and releases it when the executor is gone', async () => {
    const uids = new UidRanges(redis1, Keys.hostUidRanges(hostname()));
    const held = await uids.get(id('a'));
    expect(held?.deployment).toBe(`uids${tag}a`);
    const restarted = new LocalPlatform({ deployment: `uids${tag}a`, dataDir, executorMain: EXECUTOR_MAIN, uids });
    expect((await restarted.list()).map((h) => h.id)).toContain(id('a'));
    expect(await uids.claim(id('a'), `uids${tag}a`, 4)).toEqual(held?.range);
    // SIGKILLed: the next look at the executors finds it dead and gives its range back.
    const pid = (JSON.parse(readFileSync(join(dataDir, 'executors', `${id('a')}.json`), 'utf8')) as { pid: number }).pid;
    process.kill(pid, 'SIGKILL');
    while (!(await restarted.list()).every((h) => h.id !== id('a'))) await new Promise((r) => setTimeout(r, 100));
    expect(await uids.get(id('a'))).toBeUndefined();
  });

  it('finds a free range past a dozen that executors of other deployments hold on this host', async () => {
    // A deployment on a Redis of its own (it sees no claim) meets the host leases of 12
    // consecutive ranges from the bottom, as executors of a dozen other deployments hold them.
    const dir3 = mkdtempSync(join(tmpdir(), 'kiln-sec-uids-redis3-'));
    const server = await startRedisServer(dir3);
    const redis3 = new Redis({ path: server.socket });
    // Blocks another test's executor holds already are just as busy: their flock fails, fine.
    // `-o`: the lock stays with flock, not its child, and each holder is a process group of its own.
    const holders = Array.from({ length: 12 }, (_, b) => spawn('flock', ['--nonblock', '-o', join('/run/kiln/uids', `${200_000 + b * 1000}.lock`), 'sleep', '600'], { stdio: 'ignore', detached: true }));
    const lone = new LocalPlatform({ deployment: `uids${tag}d`, dataDir, executorMain: EXECUTOR_MAIN, uids: new UidRanges(redis3, Keys.hostUidRanges(hostname())) });
    try {
      await new Promise((r) => setTimeout(r, 300));
      const h = await lone.start(template, id('d'));
      const state = JSON.parse(readFileSync(join(dataDir, 'executors', `${id('d')}.json`), 'utf8')) as { uids: { firstUid: number } };
      expect(state.uids.firstUid).toBeGreaterThanOrEqual(212_000);
      expect(h.id).toBe(id('d'));
    } finally {
      await lone.stop(id('d'));
      for (const p of holders) {
        try {
          if (p.pid) process.kill(-p.pid, 'SIGKILL');
        } catch {
          // its flock failed (the block was busy already) and the group is gone
        }
      }
      redis3.disconnect();
      await server.stop();
      rmSync(dir3, { recursive: true, force: true });
    }
  }, 120_000);
});
