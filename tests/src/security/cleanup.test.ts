import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UidRanges } from '@kiln/control-plane/platforms/uids/ranges';
import { Keys } from '@kiln/control-plane/store/keys';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

/** The v1 memory cgroup directory of an executor started by this test process's Kiln (it inherits our cgroup). */
const executorCgroup = (executorId: string): string => {
  const own = /^\d+:[^:]*\bmemory\b[^:]*:(.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))?.[1] ?? '/';
  return join('/sys/fs/cgroup/memory', own, `kiln-${executorId}`);
};

const until = async (what: string, fn: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> => {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
};

/** Every sandbox directory of every executor of this deployment: `<dataDir>/sandboxes/<executor>/sandboxes/<sandbox>`. */
const sandboxDirs = (dataDir: string): string[] => {
  const root = join(dataDir, 'sandboxes');
  if (!existsSync(root)) return [];
  return readdirSync(root).flatMap((exe) => {
    const dir = join(root, exe, 'sandboxes');
    return existsSync(dir) ? readdirSync(dir).map((s) => join(dir, s)) : [];
  });
};

/**
 * What a sandbox leaves on the host once it ends: nothing, whether it ends because its executor
 * was SIGKILLed, its invocation timed out or its session was deleted.
 */
describe('files of ended sandboxes', () => {
  let k: TestKiln;
  const canary = mkdtempSync(join(tmpdir(), 'kiln-canary-'));
  beforeAll(async () => {
    writeFileSync(join(canary, 'keep.txt'), 'must survive');
    k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 1, maxSandboxes: 4, sandboxesPerExecutor: 4 } }, python: null, shell: null, provided: null } });
  });
  afterAll(async () => {
    await k?.stop();
    rmSync(canary, { recursive: true, force: true });
  });

  const session = async (): Promise<{ id: string; executorId: string; dir: string }> => {
    const res = await k.call('POST', '/api/v1/sessions', { template: 'nodejs' });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const record = JSON.parse((await k.redis.get(`${k.prefix}:ses:${res.body.id}`)) as string) as { executorId: string; sandboxId: string };
    return { id: res.body.id as string, executorId: record.executorId, dir: join(k.dataDir, 'sandboxes', record.executorId, 'sandboxes', record.sandboxId) };
  };

  it("removes a SIGKILLed executor's directories once the control plane notices, never following a sandbox's symlinks", async () => {
    const s = await session();
    // Code in the sandbox plants symlinks to host paths: a host-side rm that followed them
    // would delete the canary, or everything.
    const planted = await k.call('POST', `/api/v1/sessions/${s.id}/process/run`, {
      command: 'sh',
      args: ['-c', `echo data > file && mkdir -p deep/er && ln -s ${canary} escape && ln -s ${canary}/keep.txt deep/er/link && ln -s / root && echo planted`],
    });
    expect(planted.body.stdout.trim(), JSON.stringify(planted.body)).toBe('planted');
    const executorDir = join(k.dataDir, 'sandboxes', s.executorId);
    expect(existsSync(join(s.dir, 'workspace', 'file'))).toBe(true);
    // The session's sandbox and the warm one the keeper boots to replace the one it took.
    await until('a warm sandbox beside the session', () => readdirSync(join(executorDir, 'sandboxes')).length >= 2);
    const state = JSON.parse(readFileSync(join(k.dataDir, 'executors', `${s.executorId}.json`), 'utf8')) as { pid: number };
    // The executor made a cgroup per sandbox under one of its own.
    const cgroup = executorCgroup(s.executorId);
    // (The session's sandbox has booted, so its cgroup exists; the warm one may still be booting.)
    expect(readdirSync(cgroup, { withFileTypes: true }).filter((e) => e.isDirectory()).length).toBeGreaterThanOrEqual(1);
    process.kill(state.pid, 'SIGKILL');

    await until('the dead executor to be noticed and its directory removed', () => !existsSync(executorDir));
    expect(readFileSync(join(canary, 'keep.txt'), 'utf8')).toBe('must survive');
    // Its state file goes last, after its files, cgroups and uids.
    await until('its state file to be removed', () => !existsSync(join(k.dataDir, 'executors', `${s.executorId}.json`)));
    // Its uid range went back too, and its cgroups are gone.
    expect(await new UidRanges(k.redis, Keys.hostUidRanges(hostname())).get(s.executorId)).toBeUndefined();
    expect(existsSync(cgroup)).toBe(false);
  });

  it("leaves no directory of a timed-out invocation's sandbox", async () => {
    const marker = `marker-${randomBytes(4).toString('hex')}`;
    // Synchronous, so the timeout is final (an async job would be retried in a new sandbox).
    const pending = k.call('POST', '/api/v1/executions', {
      code: `exports.handler = async () => { require('fs').writeFileSync('/workspace/${marker}', 'x'); await new Promise((r) => setTimeout(r, 600000)); }`,
      language: 'nodejs',
      timeoutMs: 2000,
    });
    let dir = '';
    await until('the handler to write its marker', () => {
      dir = sandboxDirs(k.dataDir).find((d) => existsSync(join(d, 'workspace', marker))) ?? '';
      return dir !== '';
    });
    const res = await pending;
    expect(res.body.status, JSON.stringify(res.body)).toBe('timeout');
    await until('its sandbox directory to be removed', () => !existsSync(dir));
  });

  it("removes an ended session's workspace", async () => {
    const s = await session();
    expect(existsSync(join(s.dir, 'workspace'))).toBe(true);
    expect((await k.call('DELETE', `/api/v1/sessions/${s.id}`)).status).toBeLessThan(300);
    await until('the session sandbox directory to be removed', () => !existsSync(s.dir));
  });
});
