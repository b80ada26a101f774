import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { Sandbox } from 'e2b';
import { afterAll, describe, expect, it } from 'vitest';
import { processDeployment, startKilnProcess, type KilnProcess } from '../support/kiln.js';
import { alive, executorPids, until } from '../support/faults.js';

/**
 * Sessions across control-plane restarts, with the control plane as a real process and the
 * default KILN_STOP_EXECUTORS_ON_EXIT (`interrupt`): SIGKILL and SIGTERM (a crash, an upgrade)
 * leave the executors running, and the next control plane adopts them with every session: its
 * files, its background processes, its terminals (re-attached through the E2B SDK's pty.connect),
 * its NFS export and its E2B access token. Ctrl-C (SIGINT) stops everything, and the sessions then say `lost`
 * with a reason from the first request after the restart. An executor SIGKILLed under an
 * adopted session makes it `lost` without anyone calling it. A paused session stays frozen
 * (the executor keeps it so) and is adopted paused.
 */
const KEY = 'e2b_5e55105e0123456789abcdef0123456789abcdef';
/** A port free now: each restart listens on the same one, as a real deployment does, so SDK objects made before it still reach it. */
const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
const d = processDeployment({ nodejs: { pool: { minIdle: 1, maxSandboxes: 6, sandboxesPerExecutor: 6 } }, python: null, shell: null, provided: null }, KEY, { KILN_PORT: String(await freePort()), KILN_API_KEYS: KEY });
const { prefix, dirs, env, redis } = d;
let cp: KilnProcess | undefined;

afterAll(() => d.cleanup(cp));

const call = (method: string, path: string, body?: unknown) => d.call(cp, method, path, body);

const start = async (): Promise<void> => {
  cp = await startKilnProcess(env);
  process.env.E2B_API_URL = `${cp.url}/e2b`;
  process.env.E2B_SANDBOX_URL = `${cp.url}/e2b/sandbox`;
  process.env.E2B_API_KEY = KEY;
};

/** What a session holds before the restart, to be found again after it. */
interface Held {
  sbx: Sandbox;
  id: string;
  /** The libnfs URL of its /workspace export, as the record showed it before the restart. */
  nfsUrl: string;
  counterPid: number;
  ptyPid: number;
}

/** A session (made through the E2B SDK) with a file, a background process that counts and a terminal with a shell variable set. */
async function holdSession(): Promise<Held> {
  const sbx = await Sandbox.create('nodejs', { timeoutMs: 600_000 });
  const id = sbx.sandboxId;
  const put = await fetch(`${cp?.url}/api/v1/sessions/${id}/files?path=notes.txt`, { method: 'PUT', headers: { authorization: `Bearer ${KEY}` }, body: 'kept across restarts' });
  expect(put.status).toBeLessThan(300);
  const counter = await call('POST', `/api/v1/sessions/${id}/processes`, { command: 'sh', args: ['-c', 'while true; do echo x >> /workspace/ticks; sleep 0.2; done'], tag: 'counter' });
  expect(counter.status, JSON.stringify(counter.body)).toBe(201);
  const term = await sbx.pty.create({ cols: 80, rows: 24, onData: () => undefined });
  await sbx.pty.sendInput(term.pid, new TextEncoder().encode('export MARK=seven\n'));
  await until('the counter to tick', async () => Number((await call('POST', `/api/v1/sessions/${id}/process/run`, { command: 'sh', args: ['-c', 'wc -l < /workspace/ticks'] })).body.stdout) > 0);
  const nfsUrl = (await call('GET', `/api/v1/sessions/${id}`)).body.nfsUrl as string;
  expect(nfsUrl).toMatch(/^nfs:\/\//);
  return { sbx, id, nfsUrl, counterPid: counter.body.pid as number, ptyPid: term.pid };
}

/** Everything `holdSession` made is there and working after the restart. */
async function expectKept(h: Held): Promise<void> {
  const got = await call('GET', `/api/v1/sessions/${h.id}`);
  expect({ status: got.status, state: got.body.status }, JSON.stringify(got.body)).toEqual({ status: 200, state: 'running' });
  const file = await fetch(`${cp?.url}/api/v1/sessions/${h.id}/files?path=notes.txt`, { headers: { authorization: `Bearer ${KEY}` } });
  expect(await file.text()).toBe('kept across restarts');
  // The background process is still running, listed, and still counting.
  const listed = await call('GET', `/api/v1/sessions/${h.id}/processes`);
  const counter = (listed.body.processes as Array<{ pid: number; exitCode: number | null }>).find((p) => p.pid === h.counterPid);
  expect(counter, JSON.stringify(listed.body)).toMatchObject({ exitCode: null });
  const ticks = async (): Promise<number> => Number((await call('POST', `/api/v1/sessions/${h.id}/process/run`, { command: 'sh', args: ['-c', 'wc -l < /workspace/ticks'] })).body.stdout);
  const before = await ticks();
  await until('the counter to go on counting', async () => (await ticks()) > before);
  // A new process runs.
  const run = await call('POST', `/api/v1/sessions/${h.id}/process/run`, { command: 'echo', args: ['after restart'] });
  expect(run.body.stdout, JSON.stringify(run.body)).toBe('after restart\n');
  // The SDK object from before the restart still works: the access token was kept.
  expect((await h.sbx.commands.run('echo same-token')).stdout).toBe('same-token\n');
  // The NFS export answers at the address from before the restart.
  expect((await call('GET', `/api/v1/sessions/${h.id}`)).body.nfsUrl).toBe(h.nfsUrl);
  const dir = mkdtempSync(join(tmpdir(), 'kiln-restart-nfs-'));
  try {
    writeFileSync(join(dir, 'in.txt'), 'over nfs after a restart\n');
    const name = `nfs-${randomBytes(4).toString('hex')}.txt`;
    const target = h.nfsUrl.replace('?', `/${name}?`);
    const copied = await new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile('nfs-cp', [join(dir, 'in.txt'), target], { timeout: 60_000 }, (err, _out, stderr) => resolve({ code: err ? 1 : 0, stderr })),
    );
    expect(copied.code, copied.stderr).toBe(0);
    const cat = await call('POST', `/api/v1/sessions/${h.id}/process/run`, { command: 'cat', args: [name] });
    expect(cat.body.stdout).toBe('over nfs after a restart\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // The terminal is re-attached by pid and its shell still holds what was typed before.
  let screen = '';
  const decoder = new TextDecoder();
  const again = await Sandbox.connect(h.id);
  const watcher = await again.pty.connect(h.ptyPid, { onData: (d) => void (screen += decoder.decode(d, { stream: true })) });
  await again.pty.sendInput(h.ptyPid, new TextEncoder().encode('echo mark-is-$MARK\n'));
  await until('the re-attached terminal to answer', () => screen.includes('mark-is-seven'));
  await watcher.disconnect();
}

describe('sessions across control-plane restarts (default settings)', () => {
  it('survive a SIGKILL of the control plane: files, running processes, terminals and access tokens', { timeout: 120_000 }, async () => {
    await start();
    const held = [await holdSession(), await holdSession()];
    const executors = executorPids(dirs.dataDir);
    await cp?.kill('SIGKILL');
    expect(executors.every((e) => alive(e.pid))).toBe(true);
    await start();
    for (const h of held) await expectKept(h);
    const all = await call('GET', '/api/v1/sessions');
    expect((all.body.sessions as Array<{ id: string; status: string }>).filter((s) => held.some((h) => h.id === s.id)).map((s) => s.status)).toEqual(['running', 'running']);

    // And an upgrade-style stop (SIGTERM) and start: the same executors, nothing lost.
    await cp?.kill('SIGTERM');
    expect(executors.every((e) => alive(e.pid)), 'executors left running by SIGTERM').toBe(true);
    await start();
    for (const h of held) await expectKept(h);
    for (const h of held) expect((await call('DELETE', `/api/v1/sessions/${h.id}`)).status).toBe(204);
  });

  it('keeps a paused session paused across a SIGKILL of the control plane, and thaws it where it was', { timeout: 120_000 }, async () => {
    if (!cp) await start();
    const made = await call('POST', '/api/v1/sessions', { template: 'nodejs', timeoutMs: 600_000 });
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    const id = made.body.id as string;
    const counter = await call('POST', `/api/v1/sessions/${id}/processes`, { command: 'sh', args: ['-c', 'while true; do echo x >> /workspace/ticks; sleep 0.2; done'] });
    expect(counter.status, JSON.stringify(counter.body)).toBe(201);
    const ticks = async (): Promise<number> => Number((await call('POST', `/api/v1/sessions/${id}/process/run`, { command: 'sh', args: ['-c', 'wc -l < /workspace/ticks'] })).body.stdout);
    await until('the counter to tick', async () => (await ticks()) > 0);
    const paused = await call('POST', `/api/v1/sessions/${id}/pause`);
    expect({ status: paused.status, state: paused.body.status }, JSON.stringify(paused.body)).toEqual({ status: 200, state: 'paused' });
    const frozenCpu = (await call('GET', `/api/v1/sessions/${id}/usage`)).body.cpuUsageUs as number;

    await cp?.kill('SIGKILL');
    await start();
    // Still paused, and really frozen: its cgroup's CPU time has not moved across the restart.
    const got = await call('GET', `/api/v1/sessions/${id}`);
    expect({ status: got.status, state: got.body.status }, JSON.stringify(got.body)).toEqual({ status: 200, state: 'paused' });
    const usage = await call('GET', `/api/v1/sessions/${id}/usage`);
    expect(usage.body, JSON.stringify(usage.body)).toMatchObject({ paused: true, hibernated: false });
    // (A slice run just before the freeze may be accounted on a later read: tens of µs; the
    // counting loop running across the restart would add seconds.)
    expect((usage.body.cpuUsageUs as number) - frozenCpu).toBeLessThan(5000);
    expect((await call('GET', '/api/v1/sessions')).body.sessions.find((s: { id: string }) => s.id === id)?.status).toBe('paused');

    const resumed = await call('POST', `/api/v1/sessions/${id}/resume`);
    expect({ status: resumed.status, state: resumed.body.status, resumeType: resumed.body.resumeType }, JSON.stringify(resumed.body)).toEqual({ status: 200, state: 'running', resumeType: 'thawed' });
    // The same process, still counting.
    const listed = await call('GET', `/api/v1/sessions/${id}/processes`);
    expect((listed.body.processes as Array<{ pid: number; exitCode: number | null }>).find((p) => p.pid === counter.body.pid), JSON.stringify(listed.body)).toMatchObject({ exitCode: null });
    const before = await ticks();
    await until('the counter to go on counting', async () => (await ticks()) > before);
    expect((await call('DELETE', `/api/v1/sessions/${id}`)).status).toBe(204);
  });

  it('marks a session lost at once when its adopted executor is SIGKILLed, and keeps it listable until deleted', { timeout: 60_000 }, async () => {
    const h = await holdSession();
    const { executorId } = JSON.parse((await redis.get(`${prefix}:ses:${h.id}`)) as string) as { executorId: string };
    const exe = executorPids(dirs.dataDir).find((e) => e.id === executorId);
    if (!exe) throw new Error(`no state file for executor ${executorId}`);
    process.kill(exe.pid, 'SIGKILL');
    // No call on the session: the control plane's own watch marks it.
    await until('the session to be marked lost without a call on it', async () => {
      const raw = await redis.get(`${prefix}:ses:${h.id}`);
      return raw !== null && (JSON.parse(raw) as { state?: string }).state === 'lost';
    }, 30_000);
    const got = await call('GET', `/api/v1/sessions/${h.id}`);
    expect(got.body).toMatchObject({ status: 'lost', lostReason: expect.stringMatching(/executor/) });
    expect((await call('GET', '/api/v1/sessions')).body.sessions.find((s: { id: string }) => s.id === h.id)?.status).toBe('lost');
    const run = await call('POST', `/api/v1/sessions/${h.id}/process/run`, { command: 'true' });
    expect({ status: run.status, code: run.body.error?.code }).toEqual({ status: 410, code: 'SessionLost' });
    expect((await call('DELETE', `/api/v1/sessions/${h.id}`)).status).toBe(204);
    expect((await call('GET', `/api/v1/sessions/${h.id}`)).status).toBe(404);
  });

  it('says lost from the first request when the executor died while no control plane ran', { timeout: 60_000 }, async () => {
    const h = await holdSession();
    const { executorId } = JSON.parse((await redis.get(`${prefix}:ses:${h.id}`)) as string) as { executorId: string };
    await cp?.kill('SIGKILL');
    const exe = executorPids(dirs.dataDir).find((e) => e.id === executorId);
    if (!exe) throw new Error(`no state file for executor ${executorId}`);
    process.kill(exe.pid, 'SIGKILL');
    await until('the executor to be gone', () => !alive(exe.pid));
    await start();
    const got = await call('GET', `/api/v1/sessions/${h.id}`);
    expect(got.body).toMatchObject({ status: 'lost', lostReason: expect.stringMatching(/executor/) });
    const run = await call('POST', `/api/v1/sessions/${h.id}/process/run`, { command: 'true' });
    expect({ status: run.status, code: run.body.error?.code }).toEqual({ status: 410, code: 'SessionLost' });
    expect((await call('DELETE', `/api/v1/sessions/${h.id}`)).status).toBe(204);
  });

  it('stops everything on Ctrl-C (SIGINT), and its sessions are lost with that reason, never running', { timeout: 60_000 }, async () => {
    const h = await holdSession();
    const executors = executorPids(dirs.dataDir);
    expect(executors.length).toBeGreaterThan(0);
    await cp?.kill('SIGINT');
    expect(executors.filter((e) => alive(e.pid)).map((e) => e.id), `executors left running by Ctrl-C; the control plane said: ${cp?.log().slice(-3000) ?? ''}`).toEqual([]);
    await start();
    const got = await call('GET', `/api/v1/sessions/${h.id}`);
    expect(got.body).toMatchObject({ status: 'lost', lostReason: 'its executor was stopped with the control plane' });
    expect((await call('POST', `/api/v1/sessions/${h.id}/process/run`, { command: 'true' })).status).toBe(410);
    expect((await call('DELETE', `/api/v1/sessions/${h.id}`)).status).toBe(204);
  });
});
