import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inSession, startTestKiln, type TestKiln } from '../support/kiln.js';

// Limits the kernel enforces on each sandbox through its cgroup (issue 15, point 4): memory
// with tmpfs and no swap, tasks and CPU, for handlers, their children and session processes.
// Attacks come from code inside sandboxes; the host side only reads the cgroup files.

const TEMPLATE_MB = 256;
let k: TestKiln;
beforeAll(async () => {
  // diskMB 1024 gives a 512 MB /tmp, larger than memory: only the cgroup can stop a fill of it.
  k = await startTestKiln({
    templates: { nodejs: { pool: { minIdle: 1 }, resources: { memoryMB: TEMPLATE_MB, diskMB: 1024, maxProcesses: 64, cpu: 0.5 } }, python: null, shell: null, provided: null },
  });
});
afterAll(async () => {
  await k?.stop();
});

const run = (code: string, extra: Record<string, unknown> = {}) => k.call('POST', '/api/v1/executions', { code, language: 'nodejs', event: {}, timeoutMs: 15_000, ...extra });
const healthy = async () => expect((await run('exports.handler = async () => "ok"')).body.result).toBe('ok');

/** A handler expression that returns the sandbox's view of its cgroups (/proc/self/cgroup). */
const CGROUP_OF_SELF = `require('fs').readFileSync('/proc/self/cgroup', 'utf8')`;

/**
 * The host directory of a sandbox's cgroup for `controller`, from what /proc/self/cgroup showed
 * inside it. The sandbox has its own cgroup namespace rooted at the executor's cgroup, and the
 * executors are children of this test process, so that root is this process's own cgroup.
 */
function hostCgroupDir(insideView: string, controller: string): string {
  const line = insideView.split('\n').find((l) => l.split(':')[1]?.split(',').includes(controller));
  const inside = line?.split(':')[2];
  if (!inside || inside === '/') throw new Error(`the sandbox is in no ${controller} cgroup of its own: ${insideView}`);
  const own = readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => l.split(':')[1]?.split(',').includes(controller))?.split(':')[2] ?? '/';
  const mount = `/sys/fs/cgroup/${controller}`;
  const dir = join(mount, own, inside);
  if (!existsSync(dir)) throw new Error(`no cgroup directory ${dir} for ${inside}`);
  return dir;
}

const cgroupFile = (dir: string, file: string) => readFileSync(join(dir, file), 'utf8').trim();

/** Creates a session, runs `fn`, deletes the session whatever happens. */
const withSession = <T>(fn: (id: string) => Promise<T>): Promise<T> => inSession(k, fn);
const exec = (id: string, command: string, args: string[], timeoutMs = 20_000) => k.call('POST', `/api/v1/sessions/${id}/process/run`, { command, args, timeoutMs });

/** A node one-liner that allocates and touches `mb` MB in 8 MB steps, then says it survived. */
const hog = (mb: number) => `const k = []; for (let i = 0; i < ${mb / 8}; i++) k.push(Buffer.alloc(8 << 20, 1)); console.log('survived', k.length * 8, 'MB');`;

describe('memory: the kernel bounds each sandbox, tmpfs included', () => {
  it('a handler that allocates past memorySize gets Runtime.OutOfMemory, and the next invocation works on a fresh sandbox', async () => {
    // 768 MB in a tight loop and return: gone before a 100 ms RSS poll would see it.
    const res = await run(`exports.handler = async () => { const k = []; for (let i = 0; i < 96; i++) k.push(Buffer.alloc(8 << 20, 1)); return k.length; };`);
    expect(res.body.status, JSON.stringify(res.body)).toBe('failed');
    expect(res.body.error.errorType).toBe('Runtime.OutOfMemory');
    await healthy();
  });

  it('a handler whose /tmp files outgrow memorySize gets Runtime.OutOfMemory (tmpfs pages count, though no RSS shows them)', async () => {
    const res = await run(
      `const fs = require('fs');
       exports.handler = async () => { const chunk = Buffer.alloc(8 << 20, 1); const fd = fs.openSync('/tmp/fill', 'w'); for (let i = 0; i < 50; i++) fs.writeSync(fd, chunk); return 'wrote 400 MB'; };`,
    );
    expect(res.body.status, JSON.stringify(res.body)).toBe('failed');
    expect(res.body.error.errorType).toBe('Runtime.OutOfMemory');
    await healthy();
  });

  it('a handler that fills the V8 heap past its cap also gets Runtime.OutOfMemory', async () => {
    const res = await run(`exports.handler = async () => { const k = []; for (;;) k.push(new Array(1e6).fill(1.5)); };`);
    expect(res.body.status, JSON.stringify(res.body)).toBe('failed');
    expect(res.body.error.errorType).toBe('Runtime.OutOfMemory');
    await healthy();
  });

  it('a hot invocation of a function with memorySize 128 on a template of 256 cannot use more than 128', async () => {
    const source = `exports.handler = async (e) => { const k = []; for (let i = 0; i < e.mb / 8; i++) k.push(Buffer.alloc(8 << 20, 1)); return { cgroup: ${CGROUP_OF_SELF}, mb: k.length * 8 }; };`;
    const created = await k.call('POST', '/api/v1/functions', { name: 'mem128', runtime: 'nodejs20.x', code: { source }, memorySize: 128 });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const first = await k.call('POST', '/api/v1/functions/mem128/invocations', { mb: 0 });
    expect(first.body.status, JSON.stringify(first.body)).toBe('succeeded');
    const memDir = hostCgroupDir(first.body.result.cgroup, 'memory');
    expect(Number(cgroupFile(memDir, 'memory.limit_in_bytes'))).toBe(128 * 1024 * 1024);
    // Fits the template's 256 MB, not the function's 128: the hot instance must refuse it.
    const hot = await k.call('POST', '/api/v1/functions/mem128/invocations', { mb: 160 });
    expect(hot.body.status, JSON.stringify(hot.body)).toBe('failed');
    expect(hot.body.error.errorType).toBe('Runtime.OutOfMemory');
    const again = await k.call('POST', '/api/v1/functions/mem128/invocations', { mb: 0 });
    expect(again.body.status).toBe('succeeded');
  });

  it('a session process that grows past memoryMB is killed, and only it: its own and another session keep working', async () => {
    await withSession(async (a) => {
      await withSession(async (b) => {
        const res = await exec(a, '/usr/bin/node', ['-e', hog(1024)]);
        expect(res.status, JSON.stringify(res.body)).toBe(200);
        expect(res.body.stdout).not.toContain('survived');
        expect(res.body.signal).toBe('SIGKILL');
        expect(res.body.stderr).toMatch(/OOM killer.*memory limit of 256 MB/);
        expect((await exec(b, '/bin/echo', ['b alive'])).body.stdout).toBe('b alive\n');
        // v1 kills the largest process only; v2 sets memory.oom.group, which takes the whole sandbox.
        const limits = ((await k.call('GET', '/api/v1/health')).body.executors as Array<{ limits: string }>)[0]?.limits;
        if (limits === 'cgroup-v1') expect((await exec(a, '/bin/echo', ['a alive'])).body.stdout).toBe('a alive\n');
      });
    });
  });

  for (const dir of ['/dev/shm', '/tmp']) {
    it(`writing a file larger than memoryMB to ${dir} is stopped (killed or out of space)`, async () => {
      await withSession(async (id) => {
        const res = await exec(id, '/bin/sh', ['-c', `dd if=/dev/zero of=${dir}/fill bs=1M count=400 2>&1; echo "dd exit $?"; ls -s --block-size=M ${dir}/fill`]);
        expect(res.status, JSON.stringify(res.body)).toBe(200);
        // Either the shell (or the whole sandbox) was killed, or dd stopped short with an error.
        const killed = res.body.signal === 'SIGKILL' || res.body.exitCode !== 0;
        // ...or dd alone was killed by the kernel's OOM killer inside the sandbox (exit 137).
        const stopped = /No space left|Cannot allocate memory|dd exit 137/.test(res.body.stdout) && !/dd exit 0/.test(res.body.stdout);
        expect(killed || stopped, JSON.stringify(res.body)).toBe(true);
        expect(res.body.stdout).not.toMatch(/^4\d\dM/m);
      });
    });
  }
});

describe('tasks and CPU', () => {
  it('a fork bomb is capped by pids.max and the executor stays healthy', async () => {
    const res = await run(
      `const { spawn } = require('child_process');
       exports.handler = async () => {
         let started = 0, failed = 0;
         for (let i = 0; i < 300; i++) { try { const c = spawn('/bin/sleep', ['20']); c.on('error', () => failed++); started++; } catch { failed++; } }
         await new Promise((r) => setTimeout(r, 300));
         return { started, failed, cgroup: ${CGROUP_OF_SELF} };
       };`,
    );
    if (res.body.status === 'succeeded') {
      expect(res.body.result.failed).toBeGreaterThan(0);
      const pidsDir = hostCgroupDir(res.body.result.cgroup, 'pids');
      expect(cgroupFile(pidsDir, 'pids.max')).toBe('64');
      expect(Number(cgroupFile(pidsDir, 'pids.current'))).toBeLessThanOrEqual(64);
    } else {
      expect(['failed', 'timeout']).toContain(res.body.status);
    }
    await healthy();
    const health = await k.call('GET', '/api/v1/health');
    expect(health.status, JSON.stringify(health.body)).toBe(200);
    for (const e of health.body.executors) expect(e).toMatchObject({ ok: true, limits: 'cgroup-v1' });
  });

  it('a loop a handler leaves running after it returns is in the sandbox cgroup, under its CPU quota', async () => {
    const marker = `kiln-spin-${Date.now()}`;
    const res = await run(
      `const { spawn } = require('child_process');
       exports.handler = async () => {
         spawn('/bin/sh', ['-c', 'while :; do :; done', '${marker}'], { detached: true, stdio: 'ignore' }).unref();
         return ${CGROUP_OF_SELF};
       };`,
    );
    expect(res.body.status, JSON.stringify(res.body)).toBe('succeeded');
    const cpuDir = hostCgroupDir(res.body.result, 'cpu');
    expect(cgroupFile(cpuDir, 'cpu.cfs_quota_us')).toBe('50000');
    expect(cgroupFile(cpuDir, 'cpu.cfs_period_us')).toBe('100000');
    const spinners = cgroupFile(cpuDir, 'cgroup.procs')
      .split('\n')
      .filter((pid) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker);
        } catch {
          return false;
        }
      });
    expect(spinners).toHaveLength(1);
    for (const pid of spinners) process.kill(Number(pid), 'SIGKILL');
  });
});

describe('cleanup', () => {
  it('leaves no cgroup behind once the control plane has stopped its executors', async () => {
    const ids = ((await k.call('GET', '/api/v1/health')).body.executors as Array<{ id: string }>).map((e) => e.id);
    expect(ids.length).toBeGreaterThan(0);
    const kiln = k;
    k = undefined as unknown as TestKiln; // stopped here, not again in afterAll
    await kiln.stop();
    for (const controller of ['memory', 'pids', 'cpu', 'freezer']) {
      const own = readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => l.split(':')[1]?.split(',').includes(controller))?.split(':')[2] ?? '/';
      const left = readdirSync(join('/sys/fs/cgroup', controller, own)).filter((name) => ids.some((id) => name === `kiln-${id}`));
      expect(left, controller).toEqual([]);
    }
  });
});
