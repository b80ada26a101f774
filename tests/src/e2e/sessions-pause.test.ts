import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

/**
 * Pause, resume, auto-pause and auto-resume, paused time and the reaper, and hibernation, against
 * a real Kiln on this host's cgroup v1 freezer. Every session a test makes is deleted in
 * `finally`. Snapshots and forks are sessions-snapshots.test.ts'.
 */
const ALPHA = 'pause-alpha-key-0123456789abcdef0';
const BETA = 'pause-beta-key-0123456789abcdef01';
const ADMIN = 'pause-admin-key-0123456789abcdef0';

let k: TestKiln;
const alpha = { authorization: `Bearer ${ALPHA}` };
const beta = { authorization: `Bearer ${BETA}` };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  k = await startTestKiln({
    templates: { nodejs: { pool: { minIdle: 2 } }, python: null, shell: null, provided: null },
    // Hibernation only on demand here: a loaded machine must not hibernate a test's paused session.
    env: { KILN_API_KEYS: `alpha:${ALPHA},beta:${BETA}`, KILN_ADMIN_API_KEYS: ADMIN, KILN_SESSION_HIBERNATE_AFTER_MS: '0' },
  });
});
afterAll(async () => {
  await k?.stop();
});

async function withSession<T>(body: Record<string, unknown>, fn: (id: string) => Promise<T>): Promise<T> {
  const res = await k.call('POST', '/api/v1/sessions', { template: 'nodejs', timeoutMs: 300_000, ...body }, alpha);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  const id = res.body.id as string;
  try {
    return await fn(id);
  } catch (err) {
    console.error(`session ${id} failed`);
    throw err;
  } finally {
    await k.call('DELETE', `/api/v1/sessions/${id}`, undefined, alpha);
  }
}

const run = (id: string, script: string) => k.call('POST', `/api/v1/sessions/${id}/process/run`, { command: 'sh', args: ['-c', script] }, alpha);
const usage = async (id: string) => (await k.call('GET', `/api/v1/sessions/${id}/usage`, undefined, alpha)).body as { paused: boolean; hibernated: boolean; cpuUsageUs: number; memoryBytes: number; processes: number };
const status = async (id: string) => (await k.call('GET', `/api/v1/sessions/${id}`, undefined, alpha)).body as Record<string, unknown>;

/** Lines "<n> <epoch ms>" the counter wrote. */
async function counts(id: string): Promise<Array<[number, number]>> {
  const r = await run(id, 'cat /workspace/count.log');
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return (r.body.stdout as string)
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ').map(Number) as [number, number]);
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** A terminal on the session: what it printed, and a way to type. */
async function terminal(id: string): Promise<{ screen: () => string; type: (s: string) => void; close: () => void }> {
  const ws = new WebSocket(`${k.url.replace('http', 'ws')}/api/v1/sessions/${id}/pty?cols=80&rows=24`, { headers: alpha });
  let screen = '';
  ws.on('message', (data, isBinary) => {
    if (isBinary) screen += (data as Buffer).toString();
  });
  await new Promise<void>((resolve, reject) => {
    ws.on('open', () => resolve());
    ws.on('error', reject);
  });
  return { screen: () => screen, type: (s) => ws.send(Buffer.from(s)), close: () => ws.close() };
}

describe('pause and resume', () => {
  it('freezes a counting process, a 64 MB allocation and a terminal, and thaws them where they were', async () => {
    await withSession({}, async (id) => {
      const counter = await k.call('POST', `/api/v1/sessions/${id}/processes`, { command: 'sh', args: ['-c', 'i=0; while :; do i=$((i+1)); echo "$i $(date +%s%3N)" >> /workspace/count.log; sleep 0.1; done'] }, alpha);
      expect(counter.status, JSON.stringify(counter.body)).toBe(201);
      const hog = await k.call('POST', `/api/v1/sessions/${id}/processes`, { command: 'node', args: ['-e', 'globalThis.b = Buffer.alloc(64 * 1024 * 1024, 1); setInterval(() => {}, 1000)'] }, alpha);
      expect(hog.status, JSON.stringify(hog.body)).toBe(201);
      const pty = await terminal(id);
      try {
        pty.type('echo before-$((20+1))\n');
        await until('the terminal', () => Promise.resolve(pty.screen().includes('before-21')));
        await until('the counter', async () => (await counts(id)).length >= 5);
        await until('the allocation', async () => (await usage(id)).memoryBytes > 64 * 1024 * 1024);

        const paused = await k.call('POST', `/api/v1/sessions/${id}/pause`, undefined, alpha);
        expect(paused.status, JSON.stringify(paused.body)).toBe(200);
        expect(paused.body).toMatchObject({ id, status: 'paused', hibernated: false });
        const pausedAt = Date.parse(paused.body.pausedAt as string);
        expect((await status(id)).status).toBe('paused');
        // Again: nothing to do, still paused.
        expect((await k.call('POST', `/api/v1/sessions/${id}/pause`, undefined, alpha)).body).toMatchObject({ status: 'paused', tookMs: 0 });

        // No CPU at all while frozen: the cgroup's CPU time does not move. Memory stays.
        const u1 = await usage(id);
        await sleep(1500);
        const u2 = await usage(id);
        expect(u1.paused).toBe(true);
        // (A slice run just before the freeze may be accounted on a later read: tens of µs.)
        expect(u2.cpuUsageUs - u1.cpuUsageUs).toBeLessThan(5000);
        expect(u1.memoryBytes).toBeGreaterThan(64 * 1024 * 1024);
        // The frozen pages stay; the page cache the cgroup is charged for may move a little.
        expect(u2.memoryBytes).toBeGreaterThan(64 * 1024 * 1024);
        expect(Math.abs(u2.memoryBytes - u1.memoryBytes)).toBeLessThan(u1.memoryBytes * 0.05);
        expect(u2.processes).toBe(u1.processes);
        pty.type('echo after-$((40+2))\n');
        await sleep(500);
        expect(pty.screen()).not.toContain('after-42');

        const resumeStart = Date.now();
        const resumed = await k.call('POST', `/api/v1/sessions/${id}/resume`, undefined, alpha);
        expect(resumed.status, JSON.stringify(resumed.body)).toBe(200);
        expect(resumed.body).toMatchObject({ id, status: 'running', resumeType: 'thawed', lastResumeType: 'thawed' });
        expect(resumed.body.hibernated).toBeUndefined();

        // The terminal answers what was typed while paused; the count goes on from where it was.
        await until('the terminal after resume', () => Promise.resolve(pty.screen().includes('after-42')));
        const before = (await counts(id)).length;
        await until('the counter after resume', async () => (await counts(id)).length > before + 3);
        const lines = await counts(id);
        expect(lines.map(([n]) => n)).toEqual(lines.map((_, i) => i + 1));
        // Nothing was counted while frozen (a line may land while the freeze itself completes).
        expect(lines.filter(([, at]) => at > pausedAt + 200 && at < resumeStart)).toEqual([]);
        const u3 = await usage(id);
        expect(u3.paused).toBe(false);
        expect(u3.memoryBytes).toBeGreaterThan(64 * 1024 * 1024);
        const procs = await k.call('GET', `/api/v1/sessions/${id}/processes`, undefined, alpha);
        expect((procs.body.processes as Array<{ pid: number; running: boolean }>).filter((p) => [counter.body.pid, hog.body.pid].includes(p.pid)).map((p) => p.running)).toEqual([true, true]);
      } finally {
        pty.close();
      }
    });
  });

  it('does not count paused time against timeoutMs: the reaper leaves a paused session past its expiry', async () => {
    await withSession({ timeoutMs: 4000 }, async (id) => {
      const created = await status(id);
      const paused = await k.call('POST', `/api/v1/sessions/${id}/pause`, undefined, alpha);
      expect(paused.status, JSON.stringify(paused.body)).toBe(200);
      const pausedSeen = Date.now();
      // Past its 4 s lifetime while paused: still there.
      await sleep(6000);
      expect((await status(id)).status).toBe('paused');
      const resumeStart = Date.now();
      const resumed = await k.call('POST', `/api/v1/sessions/${id}/resume`, undefined, alpha);
      expect(resumed.status, JSON.stringify(resumed.body)).toBe(200);
      const moved = Date.parse(resumed.body.expiresAt as string) - Date.parse(created.expiresAt as string);
      expect(moved).toBeGreaterThanOrEqual(resumeStart - pausedSeen);
      expect((await run(id, 'echo alive')).body.stdout).toBe('alive\n');
    });
  });

  it('auto-pauses an idle session (autoPause) and auto-resumes it on the next call', async () => {
    await withSession({ autoPause: true, idleTimeoutMs: 2000 }, async (id) => {
      expect((await run(id, 'echo 1 > /workspace/state')).status).toBe(200);
      await until('the auto-pause', async () => (await status(id)).status === 'paused', 30_000);
      expect(await status(id)).toMatchObject({ autoPause: true, autoResume: true, hibernated: false });
      const r = await run(id, 'cat /workspace/state');
      expect([r.status, r.body.stdout]).toEqual([200, '1\n']);
      expect(await status(id)).toMatchObject({ status: 'running', lastResumeType: 'thawed' });
    });
  });

  it('answers 409 SessionPaused to a call on a paused session made with autoResume: false', async () => {
    await withSession({ autoResume: false }, async (id) => {
      expect((await k.call('POST', `/api/v1/sessions/${id}/pause`, undefined, alpha)).status).toBe(200);
      const r = await run(id, 'echo no');
      expect([r.status, r.body.error?.code]).toEqual([409, 'SessionPaused']);
      const file = await fetch(`${k.url}/api/v1/sessions/${id}/files?path=x`, { headers: alpha });
      expect(file.status).toBe(409);
      expect((await status(id)).status).toBe('paused');
      expect((await k.call('POST', `/api/v1/sessions/${id}/resume`, undefined, alpha)).body.resumeType).toBe('thawed');
      expect((await run(id, 'echo yes')).body.stdout).toBe('yes\n');
    });
  });
});

describe('hibernation', () => {
  it('saves /workspace, frees the sandbox and restores the files into a new one (resumeType "restored")', async () => {
    await withSession({}, async (id) => {
      const setup = await run(id, 'mkdir -p dir/sub && echo hello > dir/sub/a.txt && head -c 3000000 /dev/urandom > big.bin && sha256sum big.bin > big.sum && ln -s /etc etc-link && chmod 700 dir');
      expect(setup.status, JSON.stringify(setup.body)).toBe(200);
      const before = (await run(id, 'sha256sum big.bin')).body.stdout as string;
      expect((await k.call('POST', `/api/v1/sessions/${id}/processes`, { command: 'sleep', args: ['600'] }, alpha)).status).toBe(201);

      const h = await k.call('POST', `/api/v1/sessions/${id}/hibernate`, undefined, alpha);
      expect(h.status, JSON.stringify(h.body)).toBe(200);
      expect(h.body).toMatchObject({ status: 'paused', hibernated: true });
      expect(await usage(id)).toMatchObject({ hibernated: true, memoryBytes: 0, processes: 0 });
      // Still paused some seconds on: the reaper does not take a hibernated session for lost.
      await sleep(2500);
      expect(await status(id)).toMatchObject({ status: 'paused', hibernated: true });

      const resumed = await k.call('POST', `/api/v1/sessions/${id}/resume`, undefined, alpha);
      expect(resumed.status, JSON.stringify(resumed.body)).toBe(200);
      expect(resumed.body).toMatchObject({ status: 'running', resumeType: 'restored', lastResumeType: 'restored' });
      const check = await run(id, 'cat dir/sub/a.txt; sha256sum -c big.sum; readlink etc-link; stat -c %a dir; pgrep -x sleep || echo no-sleep');
      expect(check.body.stdout).toBe(`hello\nbig.bin: OK\n/etc\n700\nno-sleep\n`);
      expect((await run(id, 'sha256sum big.bin')).body.stdout).toBe(before);

      // Hibernated again, then woken by a call that needs the sandbox.
      expect((await k.call('POST', `/api/v1/sessions/${id}/hibernate`, undefined, alpha)).body.hibernated).toBe(true);
      const auto = await run(id, 'cat dir/sub/a.txt');
      expect([auto.status, auto.body.stdout]).toEqual([200, 'hello\n']);
      expect(await status(id)).toMatchObject({ status: 'running', lastResumeType: 'restored' });
    });
  });

  it('deleting a hibernated session removes its archive', async () => {
    const res = await k.call('POST', '/api/v1/sessions', { template: 'nodejs' }, alpha);
    const id = res.body.id as string;
    expect((await k.call('POST', `/api/v1/sessions/${id}/hibernate`, undefined, alpha)).status).toBe(200);
    const { existsSync } = await import('node:fs');
    const blob = `${k.dataDir}/blobs/hibernation/${id}`;
    expect(existsSync(blob)).toBe(true);
    expect((await k.call('DELETE', `/api/v1/sessions/${id}`, undefined, alpha)).status).toBe(204);
    expect(existsSync(blob)).toBe(false);
    expect((await k.call('GET', `/api/v1/sessions/${id}`, undefined, alpha)).status).toBe(404);
  });
});

describe('tenancy', () => {
  it('gives another tenant 404 on pause, resume, hibernate and usage, and leaves the session as it was', async () => {
    await withSession({}, async (id) => {
      for (const path of ['pause', 'resume', 'hibernate']) {
        const r = await k.call('POST', `/api/v1/sessions/${id}/${path}`, undefined, beta);
        expect([path, r.status, r.body.error?.code]).toEqual([path, 404, 'SessionNotFound']);
      }
      expect((await k.call('GET', `/api/v1/sessions/${id}/usage`, undefined, beta)).status).toBe(404);
      expect((await status(id)).status).toBe('running');
      expect((await k.call('POST', `/api/v1/sessions/ses_nothere/pause`, undefined, alpha)).status).toBe(404);
    });
  });
});

describe('lifetimes above 24 hours', () => {
  it('are refused by default and allowed up to the template\'s maxSessionTimeoutMs', async () => {
    const admin = { authorization: `Bearer ${ADMIN}` };
    const day = 86_400_000;
    const refused = await k.call('POST', '/api/v1/sessions', { template: 'nodejs', timeoutMs: 2 * day }, alpha);
    expect([refused.status, refused.body.error?.message]).toEqual([400, expect.stringContaining('maxSessionTimeoutMs')]);
    const t = await k.call('GET', '/api/v1/templates/nodejs', undefined, admin);
    expect(t.status).toBe(200);
    const template = { ...(t.body as Record<string, unknown>) };
    delete template.name;
    delete template.revisedAt;
    const put = async (extra: Record<string, unknown>) => {
      const r = await k.call('PUT', '/api/v1/templates/nodejs', { ...template, ...extra }, admin);
      expect(r.status, JSON.stringify(r.body)).toBe(200);
    };
    await put({ maxSessionTimeoutMs: 7 * day });
    try {
      await withSession({ timeoutMs: 2 * day }, async (id) => {
        const s = await status(id);
        expect(Date.parse(s.expiresAt as string) - Date.parse(s.createdAt as string)).toBe(2 * day);
        expect((await k.call('POST', `/api/v1/sessions/${id}/keepalive`, { timeoutMs: 3 * day }, alpha)).status).toBe(200);
        expect((await k.call('POST', `/api/v1/sessions/${id}/keepalive`, { timeoutMs: 8 * day }, alpha)).status).toBe(400);
        expect((await run(id, 'echo long')).body.stdout).toBe('long\n');
      });
      expect((await k.call('POST', '/api/v1/sessions', { template: 'nodejs', timeoutMs: 8 * day }, alpha)).status).toBe(400);
    } finally {
      await put({});
    }
  });
});
