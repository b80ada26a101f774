import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Sandbox } from 'e2b';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

/**
 * Snapshots, sessions from snapshots, forks, the snapshot quota, another tenant's view of all of
 * them, a tampered archive in the blob store, and E2B's SDK pausing and resuming. Tenants alpha
 * and beta; every session and snapshot a test makes is deleted in `finally`.
 */
const ALPHA = 'e2b_a1a1a1a1aaaa456789abcdef0123456789abcdef';
const BETA = 'e2b_b2b2b2b2bbbb456789abcdef0123456789abcdef';

let k: TestKiln;
const alpha = { authorization: `Bearer ${ALPHA}` };
const beta = { authorization: `Bearer ${BETA}` };

beforeAll(async () => {
  k = await startTestKiln({
    templates: { nodejs: { pool: { minIdle: 3, sandboxesPerExecutor: 8 } }, python: null, shell: null, provided: null },
    env: { KILN_API_KEYS: `alpha:${ALPHA},beta:${BETA}`, KILN_SESSION_HIBERNATE_AFTER_MS: '0', KILN_QUOTA_SNAPSHOTS: '3' },
  });
  process.env.E2B_API_URL = `${k.url}/e2b`;
  process.env.E2B_SANDBOX_URL = `${k.url}/e2b/sandbox`;
  process.env.E2B_API_KEY = ALPHA;
});
afterAll(async () => {
  await k?.stop();
});

const made: { sessions: string[]; snapshots: string[] } = { sessions: [], snapshots: [] };
async function cleanup(): Promise<void> {
  for (const id of made.sessions.splice(0)) await k.call('DELETE', `/api/v1/sessions/${id}`, undefined, alpha);
  for (const id of made.snapshots.splice(0)) await k.call('DELETE', `/api/v1/snapshots/${id}`, undefined, alpha);
}

async function session(body: Record<string, unknown> = {}, who = alpha): Promise<string> {
  const res = await k.call('POST', '/api/v1/sessions', { template: 'nodejs', timeoutMs: 300_000, ...body }, who);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  made.sessions.push(res.body.id as string);
  return res.body.id as string;
}

async function snapshot(id: string, name?: string): Promise<Record<string, unknown>> {
  const res = await k.call('POST', `/api/v1/sessions/${id}/snapshots`, name ? { name } : undefined, alpha);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  made.snapshots.push(res.body.id as string);
  return res.body as Record<string, unknown>;
}

const sh = async (id: string, script: string, who = alpha): Promise<string> => {
  const r = await k.call('POST', `/api/v1/sessions/${id}/process/run`, { command: 'sh', args: ['-c', script] }, who);
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body.stdout as string;
};

describe('snapshots', () => {
  it('saves a named snapshot, lists it, starts a session from it, and deletes it', async () => {
    try {
      const src = await session();
      await sh(src, 'mkdir -p proj && echo v1 > proj/file.txt && ln -s /etc etc-link && ln -s ../../../../etc/passwd proj/up');
      const snap = await snapshot(src, 'before-refactor');
      expect(snap).toMatchObject({ name: 'before-refactor', template: 'nodejs', sessionId: src, tenant: 'alpha' });
      expect(snap.id).toMatch(/^snap_/);
      // The symlinks went in as links: /etc was not archived.
      expect(snap.bytes as number).toBeLessThan(64 * 1024);
      const listed = await k.call('GET', '/api/v1/snapshots', undefined, alpha);
      expect((listed.body.snapshots as Array<{ id: string }>).map((s) => s.id)).toContain(snap.id);
      expect((await k.call('GET', `/api/v1/snapshots/${snap.id as string}`, undefined, alpha)).body).toMatchObject({ name: 'before-refactor' });

      await sh(src, 'echo v2 > proj/file.txt');
      const res = await k.call('POST', '/api/v1/sessions', { fromSnapshot: snap.id, timeoutMs: 300_000 }, alpha);
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      made.sessions.push(res.body.id as string);
      expect(res.body.template).toBe('nodejs');
      expect(await sh(res.body.id as string, 'cat proj/file.txt; readlink etc-link; readlink proj/up')).toBe('v1\n/etc\n../../../../etc/passwd\n');
      expect(await sh(src, 'cat proj/file.txt')).toBe('v2\n');

      expect((await k.call('DELETE', `/api/v1/snapshots/${snap.id as string}`, undefined, alpha)).status).toBe(204);
      expect(existsSync(join(k.dataDir, 'blobs', 'snapshots', snap.id as string))).toBe(false);
      const gone = await k.call('POST', '/api/v1/sessions', { fromSnapshot: snap.id }, alpha);
      expect([gone.status, gone.body.error?.code]).toEqual([404, 'SnapshotNotFound']);
    } finally {
      await cleanup();
    }
  });

  it('snapshots a paused session without resuming it', async () => {
    try {
      const src = await session();
      await sh(src, 'echo kept > f');
      expect((await k.call('POST', `/api/v1/sessions/${src}/pause`, undefined, alpha)).status).toBe(200);
      const snap = await snapshot(src);
      expect((await k.call('GET', `/api/v1/sessions/${src}`, undefined, alpha)).body.status).toBe('paused');
      const usage = await k.call('GET', `/api/v1/sessions/${src}/usage`, undefined, alpha);
      expect(usage.body.paused).toBe(true);
      const copy = await k.call('POST', '/api/v1/sessions', { fromSnapshot: snap.id }, alpha);
      expect(copy.status, JSON.stringify(copy.body)).toBe(201);
      made.sessions.push(copy.body.id as string);
      expect(await sh(copy.body.id as string, 'cat f')).toBe('kept\n');
    } finally {
      await cleanup();
    }
  });

  it('counts snapshots against the tenant\'s quota (KILN_QUOTA_SNAPSHOTS=3)', async () => {
    try {
      const src = await session();
      for (let i = 0; i < 3; i++) await snapshot(src, `s${i}`);
      const over = await k.call('POST', `/api/v1/sessions/${src}/snapshots`, { name: 'one-too-many' }, alpha);
      expect([over.status, over.body.error?.code, over.body.error?.data?.quota]).toEqual([429, 'QuotaExceeded', 'snapshots']);
      // Deleting one makes room.
      expect((await k.call('DELETE', `/api/v1/snapshots/${made.snapshots.pop() as string}`, undefined, alpha)).status).toBe(204);
      await snapshot(src, 'fits-again');
    } finally {
      await cleanup();
    }
  });

  it('refuses an archive changed in the blob store: no session is made, nothing is written outside /workspace', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hostile-tar-'));
    try {
      const src = await session();
      await sh(src, 'echo ok > f');
      const snap = await snapshot(src);
      // A hostile archive in the snapshot's place: a symlink to /etc, then a file through it, and a "..".
      execFileSync('sh', ['-c', `cd ${dir} && mkdir w && ln -s /etc w/etc && echo pwned > evil && tar -cf hostile.tar -C w etc && tar -rf hostile.tar --transform='s,^evil,etc/kiln-pwned,' evil && tar -rf hostile.tar --transform='s,^evil,../../kiln-pwned-up,' evil`]);
      writeFileSync(join(k.dataDir, 'blobs', 'snapshots', snap.id as string), execFileSync('cat', [join(dir, 'hostile.tar')]));
      const before = (await k.call('GET', '/api/v1/sessions', undefined, alpha)).body.sessions.length as number;
      const res = await k.call('POST', '/api/v1/sessions', { fromSnapshot: snap.id }, alpha);
      expect([res.status, res.body.error?.code]).toEqual([500, 'UnsafeArchive']);
      expect((await k.call('GET', '/api/v1/sessions', undefined, alpha)).body.sessions.length).toBe(before);
      expect(existsSync('/etc/kiln-pwned')).toBe(false);
      expect(existsSync(join(k.dataDir, 'kiln-pwned-up'))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await cleanup();
    }
  });
});

describe('forks', () => {
  it('makes three sessions with copies of the workspace that then change independently', async () => {
    try {
      const src = await session({ metadata: { run: 'fork-test' } });
      await sh(src, 'echo base > shared.txt');
      const res = await k.call('POST', `/api/v1/sessions/${src}/fork`, { count: 3, metadata: { branch: 'x' } }, alpha);
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      const ids = (res.body.sessions as Array<{ id: string; metadata: Record<string, string> }>).map((s) => s.id);
      made.sessions.push(...ids);
      expect(new Set(ids).size).toBe(3);
      expect((res.body.sessions as Array<{ metadata: Record<string, string> }>)[0]?.metadata).toEqual({ run: 'fork-test', branch: 'x' });
      for (const [i, id] of ids.entries()) await sh(id, `echo mine-${i} > own.txt && echo changed-${i} >> shared.txt`);
      for (const [i, id] of ids.entries()) expect(await sh(id, 'cat shared.txt own.txt')).toBe(`base\nchanged-${i}\nmine-${i}\n`);
      expect(await sh(src, 'cat shared.txt; ls own.txt 2>/dev/null || echo none')).toBe('base\nnone\n');
    } finally {
      await cleanup();
    }
  });

  it('bounds count and counts forks against the session quota', async () => {
    try {
      const src = await session();
      for (const count of [0, 11, 2.5]) {
        const r = await k.call('POST', `/api/v1/sessions/${src}/fork`, { count }, alpha);
        expect([count, r.status]).toEqual([count, 400]);
      }
    } finally {
      await cleanup();
    }
  });
});

describe('tenancy', () => {
  it('gives another tenant 404 on snapshot, fork, fromSnapshot and alpha\'s snapshots, and lists none of them', async () => {
    try {
      const src = await session();
      await sh(src, 'echo alpha-secret > s.txt');
      const snap = await snapshot(src);
      const tries = [
        await k.call('POST', `/api/v1/sessions/${src}/snapshots`, { name: 'steal' }, beta),
        await k.call('POST', `/api/v1/sessions/${src}/fork`, { count: 1 }, beta),
        await k.call('POST', '/api/v1/sessions', { fromSnapshot: snap.id }, beta),
        await k.call('GET', `/api/v1/snapshots/${snap.id as string}`, undefined, beta),
        await k.call('DELETE', `/api/v1/snapshots/${snap.id as string}`, undefined, beta),
      ];
      expect(tries.map((t) => t.status)).toEqual([404, 404, 404, 404, 404]);
      const listed = await k.call('GET', '/api/v1/snapshots', undefined, beta);
      expect(listed.body.snapshots).toEqual([]);
      expect(JSON.stringify(listed.body)).not.toContain(snap.id as string);
      expect((await k.call('GET', '/api/v1/sessions', undefined, beta)).body.sessions).toEqual([]);
      expect((await k.call('GET', `/api/v1/snapshots/${snap.id as string}`, undefined, alpha)).status).toBe(200);
    } finally {
      await cleanup();
    }
  });
});

describe('E2B SDK', () => {
  it('pauses with sandbox.pause() and resumes with Sandbox.connect(), processes and files kept', async () => {
    const sbx = await Sandbox.create('nodejs', { timeoutMs: 120_000 });
    try {
      await sbx.files.write('/home/user/note.txt', 'from e2b');
      const bg = await sbx.commands.run('sleep 600', { background: true });
      expect(await sbx.pause()).toBe(true);
      expect((await Sandbox.getInfo(sbx.sandboxId)).state).toBe('paused');
      expect(await sbx.pause()).toBe(false);
      const paused = await Sandbox.list({ query: { state: ['paused'] } }).nextItems();
      expect(paused.map((s) => s.sandboxId)).toContain(sbx.sandboxId);
      const again = await Sandbox.connect(sbx.sandboxId);
      expect((await Sandbox.getInfo(sbx.sandboxId)).state).toBe('running');
      expect(await again.files.read('/home/user/note.txt')).toBe('from e2b');
      expect((await again.commands.run('pgrep -x sleep')).stdout.trim()).toMatch(/^\d+$/);
      expect((await again.commands.list()).map((p) => p.pid)).toContain(bg.pid);
      // Another tenant's key cannot pause it.
      await expect(Sandbox.pause(sbx.sandboxId, { apiKey: BETA })).rejects.toThrow();
      expect((await Sandbox.getInfo(sbx.sandboxId)).state).toBe('running');
    } finally {
      await Sandbox.kill(sbx.sandboxId);
    }
  });

  it('keepMemory: false hibernates; the next envd call restores the files (auto-resume)', async () => {
    const sbx = await Sandbox.create('nodejs', { timeoutMs: 120_000 });
    try {
      await sbx.files.write('/home/user/kept.txt', 'files only');
      expect(await sbx.pause({ keepMemory: false })).toBe(true);
      expect((await k.call('GET', `/api/v1/sessions/${sbx.sandboxId}`, undefined, alpha)).body).toMatchObject({ status: 'paused', hibernated: true });
      // The sandbox's own envd surface (access token, no key) resumes it as any call that needs it.
      expect(await sbx.files.read('/home/user/kept.txt')).toBe('files only');
      expect((await k.call('GET', `/api/v1/sessions/${sbx.sandboxId}`, undefined, alpha)).body.lastResumeType).toBe('restored');
    } finally {
      await Sandbox.kill(sbx.sandboxId);
    }
  });
});
