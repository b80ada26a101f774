import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AuthenticationError,
  ConflictError,
  FunctionNotFoundError,
  InvalidRequestError,
  KilnError,
  QuotaExceededError,
  SessionNotFoundError,
  SessionPausedError,
  SnapshotNotFoundError,
  VolumeInUseError,
  VolumeNotFoundError,
  type Session,
  type WebSocketLike,
} from '@kiln-sandbox/sdk';
import { Kiln } from '@kiln-sandbox/sdk/node';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

/**
 * The TypeScript SDK against a real Kiln: the scenario list both SDKs share (create, run,
 * stream, files with a 100 MB upload, PTY, functions deploy and invoke, errors, 429 retry).
 * Each tenant here is this file's own; everything made is deleted.
 */
const ADMIN = 'sdk-admin-key-0123456789abcdef0123';
const BIG = 100 * 1024 * 1024;

let k: TestKiln;
let kiln: Kiln;
let session: Session;
const keys: Record<string, string> = {};
const dirs: string[] = [];

beforeAll(async () => {
  k = await startTestKiln({
    templates: { nodejs: { pool: { minIdle: 1 } }, python: null, shell: null, provided: null },
    // A 100 MB file goes up in one streamed PUT: the body limit must allow it.
    env: { KILN_ADMIN_API_KEYS: ADMIN, KILN_MAX_BODY_BYTES: String(128 * 1024 * 1024) },
  });
  const admin = { authorization: `Bearer ${ADMIN}` };
  for (const [id, quotas] of Object.entries({ sdk: {}, sdkrate: { requestsPerSecond: 2 } })) {
    expect((await k.call('POST', '/api/v1/admin/tenants', { id, quotas }, admin)).status).toBe(201);
    keys[id] = (await k.call('POST', `/api/v1/admin/tenants/${id}/keys`, {}, admin)).body.key as string;
  }
  kiln = new Kiln({ url: k.url, apiKey: keys.sdk, WebSocket: WebSocket as unknown as WebSocketLike });
  session = await kiln.sessions.create({ template: 'nodejs', metadata: { suite: 'sdk', run: k.prefix } });
}, 120_000);

afterAll(async () => {
  await session?.kill().catch((err: unknown) => console.error('session cleanup failed', err));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  await k?.stop();
});

describe('sessions', () => {
  it('creates a session and finds it by metadata, not by another value', async () => {
    expect(session.id).toBeTruthy();
    expect(session.info.metadata).toEqual({ suite: 'sdk', run: k.prefix });
    expect((await kiln.sessions.list({ metadata: { run: k.prefix } })).map((s) => s.id)).toEqual([session.id]);
    expect(await kiln.sessions.list({ metadata: { run: 'another' } })).toEqual([]);
    expect((await kiln.sessions.connect(session.id)).info.template).toBe('nodejs');
  });

  it('runs a command to completion, with its exit code and both streams', async () => {
    const r = await session.commands.run('echo out; echo err >&2; exit 3');
    expect([r.stdout, r.stderr, r.exitCode]).toEqual(['out\n', 'err\n', 3]);
    const args = await session.commands.run('node', { args: ['-e', 'console.log(6 * 7)'] });
    expect(args.stdout).toBe('42\n');
  });

  it('streams output to callbacks as it comes', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const r = await session.commands.run('for i in 1 2 3; do echo line$i; sleep 0.2; done; echo oops >&2', { onStdout: (d) => out.push(d), onStderr: (d) => err.push(d) });
    expect(out.join('')).toBe('line1\nline2\nline3\n');
    // Three writes a fifth of a second apart arrive as separate events.
    expect(out.length).toBeGreaterThanOrEqual(2);
    expect(err.join('')).toBe('oops\n');
    expect([r.exitCode, r.stdout, r.pid > 0]).toEqual([0, 'line1\nline2\nline3\n', true]);
  });

  it('runs a background process: stdin, output, exit', async () => {
    const handle = await session.commands.run('read line; echo got:$line', { background: true, keepStdin: true, tag: 'reader' });
    expect(handle.pid).toBeGreaterThan(0);
    const out: string[] = [];
    const exited = handle.wait({ onStdout: (d) => out.push(d) });
    await handle.sendStdin('hello\n', { close: true });
    expect((await exited).exitCode).toBe(0);
    expect(out.join('')).toBe('got:hello\n');
    expect((await session.commands.list()).some((p) => p.tag === 'reader')).toBe(true);
  });

  it('cancels a call with an AbortSignal', async () => {
    const ac = new AbortController();
    const run = session.commands.run('sleep 30', { signal: ac.signal, onStdout: () => undefined });
    setTimeout(() => ac.abort(), 300);
    await expect(run).rejects.toMatchObject({ name: 'AbortError' });
    // An already-aborted signal never sends the request.
    await expect(kiln.sessions.list({}, { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
  });
});

describe('files', () => {
  it('writes, reads, lists, stats and removes', async () => {
    await session.files.write('dir/a.txt', 'alpha');
    await session.files.write('dir/b.bin', new Uint8Array([0, 1, 2, 255]));
    expect(await session.files.read('dir/a.txt')).toBe('alpha');
    expect([...(await session.files.readBytes('dir/b.bin'))]).toEqual([0, 1, 2, 255]);
    expect((await session.files.list('dir')).map((e) => e.name).sort()).toEqual(['a.txt', 'b.bin']);
    expect((await session.files.stat('dir/a.txt')).size).toBe(5);
    expect(await session.files.remove('dir', { recursive: true })).toBe(true);
    expect(await session.files.exists('dir/a.txt')).toBe(false);
  });

  it('uploads 100 MB as a stream and downloads the same bytes (sha256)', { timeout: 300_000 }, async () => {
    const up = createHash('sha256');
    let sent = 0;
    // Generated as it is sent: the upload is never in memory whole, on either side.
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= BIG) return controller.close();
        const chunk = randomBytes(Math.min(1024 * 1024, BIG - sent));
        up.update(chunk);
        sent += chunk.length;
        controller.enqueue(chunk);
      },
    });
    const info = await session.files.upload('big.bin', body);
    expect(info.size).toBe(BIG);
    const expected = up.digest('hex');
    expect((await session.commands.run('sha256sum big.bin', { timeoutMs: 120_000 })).stdout.split(' ')[0]).toBe(expected);
    const down = createHash('sha256');
    let received = 0;
    const stream = await session.files.download('big.bin');
    for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) {
      down.update(chunk);
      received += chunk.length;
    }
    expect([received, down.digest('hex')]).toEqual([BIG, expected]);
    await session.files.remove('big.bin');
  });
});

describe('pty', () => {
  it('opens a terminal, runs a command in it and reports the exit code', async () => {
    let screen = '';
    const decoder = new TextDecoder();
    const term = await session.pty.create({ cols: 100, rows: 30, onData: (d) => (screen += decoder.decode(d, { stream: true })) });
    term.resize(120, 40);
    term.write('echo pty-$((6*7))\n');
    const deadline = Date.now() + 30_000;
    while (!screen.includes('pty-42') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(screen).toContain('pty-42');
    term.write('exit 5\n');
    expect(await term.exited).toBe(5);
  });
});

describe('functions', () => {
  it('deploys a folder, invokes it, and deploys a change over it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-sdk-fn-'));
    dirs.push(dir);
    mkdirSync(join(dir, 'lib'));
    writeFileSync(join(dir, 'lib/add.js'), 'exports.add = (a, b) => a + b;');
    writeFileSync(join(dir, 'index.js'), 'const { add } = require("./lib/add");\nexports.handler = async (e) => ({ sum: add(e.a, e.b) });');
    const fn = await kiln.functions.deploy(dir, { name: 'sdk-add', runtime: 'nodejs20.x', handler: 'index.handler' });
    expect(fn.name).toBe('sdk-add');
    const r = await kiln.functions.invoke('sdk-add', { a: 2, b: 40 });
    expect([r.status, r.result]).toEqual(['succeeded', { sum: 42 }]);

    writeFileSync(join(dir, 'index.js'), 'exports.handler = async (e) => ({ product: e.a * e.b });');
    await kiln.functions.deploy(dir, { name: 'sdk-add', runtime: 'nodejs20.x', handler: 'index.handler' });
    expect((await kiln.functions.invoke('sdk-add', { a: 6, b: 7 })).result).toEqual({ product: 42 });
    expect((await kiln.functions.list()).map((f) => f.name)).toEqual(['sdk-add']);
    await kiln.functions.delete('sdk-add');
  });

  it('reports a handler\'s error in the record, not as an exception', async () => {
    await kiln.functions.deploy({ name: 'sdk-fail', runtime: 'nodejs20.x', handler: 'index.handler', files: { 'index.js': 'exports.handler = async () => { throw new TypeError("nope"); };' } });
    const r = await kiln.functions.invoke('sdk-fail');
    expect(r.status).toBe('failed');
    expect(r.error).toMatchObject({ errorType: 'TypeError', errorMessage: 'nope' });
    await kiln.functions.delete('sdk-fail');
  });
});

describe('pause, snapshots and forks', () => {
  it('pauses (no CPU while frozen), resumes thawed, hibernates and restores, with usage', { timeout: 180_000 }, async () => {
    const s = await kiln.sessions.create({ template: 'nodejs', timeoutMs: 300_000 });
    try {
      await s.files.write('mark.txt', 'kept');
      await s.commands.run('while :; do :; done', { background: true });
      const paused = await s.pause();
      expect(paused).toMatchObject({ id: s.id, status: 'paused' });
      expect(s.info.status).toBe('paused');
      const a = await s.usage();
      await new Promise((r) => setTimeout(r, 300));
      const b = await s.usage();
      expect(a).toMatchObject({ paused: true, hibernated: false });
      // Frozen: the spinning loop would add ~300 000 µs. The kernel may account the last slice it
      // ran before the freeze on a later read (47 µs seen in CI), so not exactly equal.
      expect(b.cpuUsageUs - a.cpuUsageUs).toBeLessThan(5000);
      expect(await s.resume()).toMatchObject({ status: 'running', resumeType: 'thawed' });
      expect((await s.usage()).paused).toBe(false);
      expect(await s.hibernate()).toMatchObject({ status: 'paused' });
      expect(await s.usage()).toMatchObject({ hibernated: true });
      expect((await s.resume()).resumeType).toBe('restored');
      expect(await s.files.read('mark.txt')).toBe('kept');
    } finally {
      await s.kill();
    }
  });

  it('throws SessionPausedError for a call on a paused session made with autoResume false', { timeout: 120_000 }, async () => {
    const s = await kiln.sessions.create({ template: 'nodejs', autoResume: false });
    try {
      await s.pause();
      expect(await s.commands.run('true').catch((e: unknown) => e)).toBeInstanceOf(SessionPausedError);
      await s.resume();
      expect((await s.commands.run('echo ok')).stdout).toBe('ok\n');
    } finally {
      await s.kill();
    }
  });

  it('snapshots a session, lists it, starts a session from it, forks, and deletes the snapshot', { timeout: 180_000 }, async () => {
    const s = await kiln.sessions.create({ template: 'nodejs' });
    const made: Session[] = [];
    try {
      await s.files.write('plan.txt', 'v1');
      const snap = await s.snapshot({ name: 'sdk-v1' });
      expect(snap).toMatchObject({ name: 'sdk-v1', sessionId: s.id, template: 'nodejs' });
      expect((await kiln.snapshots.list()).map((x) => x.id)).toContain(snap.id);
      expect(await kiln.snapshots.get(snap.id)).toMatchObject({ id: snap.id });
      await s.files.write('plan.txt', 'v2');
      const from = await kiln.sessions.createFromSnapshot(snap.id);
      made.push(from);
      expect(await from.files.read('plan.txt')).toBe('v1');
      const forks = await s.fork({ count: 2, metadata: { branch: 'sdk' } });
      made.push(...forks);
      expect(forks).toHaveLength(2);
      expect(forks[0]?.info.metadata).toMatchObject({ branch: 'sdk' });
      await forks[0]?.files.write('plan.txt', 'fork-a');
      expect(await forks[1]?.files.read('plan.txt')).toBe('v2');
      await kiln.snapshots.delete(snap.id);
      expect(await kiln.snapshots.get(snap.id).catch((e: unknown) => e)).toBeInstanceOf(SnapshotNotFoundError);
      expect(await kiln.sessions.createFromSnapshot(snap.id).catch((e: unknown) => e)).toBeInstanceOf(SnapshotNotFoundError);
    } finally {
      for (const m of made) await m.kill();
      await s.kill();
    }
  });
});

describe('volumes', () => {
  it('creates a volume (idempotently), mounts it in two sessions (one read-only), refuses its delete while mounted, deletes it', { timeout: 180_000 }, async () => {
    const vol = await kiln.volumes.create({ name: 'sdk-data', sizeMB: 16 }, { idempotencyKey: 'sdk-vol-1' });
    expect(vol).toMatchObject({ name: 'sdk-data', sizeMB: 16 });
    expect((await kiln.volumes.create({ name: 'sdk-data', sizeMB: 16 }, { idempotencyKey: 'sdk-vol-1' })).id).toBe(vol.id);
    await expect(kiln.volumes.create({ name: 'sdk-data', sizeMB: 16 })).rejects.toBeInstanceOf(ConflictError);
    expect((await kiln.volumes.list()).map((v) => v.name)).toContain('sdk-data');
    const writer = await kiln.sessions.create({ template: 'nodejs', volumes: [{ name: 'sdk-data', path: '/mnt/data', readOnly: false }] });
    const reader = await kiln.sessions.create({ template: 'nodejs', volumes: [{ name: 'sdk-data', path: '/mnt/data', readOnly: true }] });
    try {
      expect((await writer.commands.run('echo shared > /mnt/data/note')).exitCode).toBe(0);
      expect((await reader.commands.run('cat /mnt/data/note')).stdout).toBe('shared\n');
      expect((await reader.commands.run('echo x > /mnt/data/other')).exitCode).not.toBe(0);
      await expect(kiln.volumes.delete('sdk-data')).rejects.toBeInstanceOf(VolumeInUseError);
    } finally {
      await writer.kill();
      await reader.kill();
    }
    await kiln.volumes.delete('sdk-data');
    await expect(kiln.volumes.get('sdk-data')).rejects.toBeInstanceOf(VolumeNotFoundError);
  });
});

describe('errors', () => {
  it('maps Kiln\'s codes to typed classes', async () => {
    const unknown = await kiln.sessions.connect('no-such-session').catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(SessionNotFoundError);
    expect(unknown).toMatchObject({ code: 'SessionNotFound', status: 404 });

    const fn = await kiln.functions.invoke('no-such-function').catch((e: unknown) => e);
    expect(fn).toBeInstanceOf(FunctionNotFoundError);

    const bad = await kiln.sessions.create({ timeoutMs: 5 }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(InvalidRequestError);
    expect((bad as KilnError).message).toContain('timeoutMs');

    const outside = await session.files.read('/etc/passwd').catch((e: unknown) => e);
    expect(outside).toBeInstanceOf(InvalidRequestError);
    expect((outside as KilnError).code).toBe('PathOutsideWorkspace');

    const stranger = new Kiln({ url: k.url, apiKey: 'kiln_not-a-key' });
    expect(await stranger.sessions.list().catch((e: unknown) => e)).toBeInstanceOf(AuthenticationError);
  });

  it('another tenant\'s session is unknown (404), not forbidden', async () => {
    const other = new Kiln({ url: k.url, apiKey: keys.sdkrate, maxRetries: 10 });
    expect(await other.sessions.connect(session.id).catch((e: unknown) => e)).toBeInstanceOf(SessionNotFoundError);
  });
});

describe('429 retry', () => {
  it('retries requests refused by the request-rate quota, honouring Retry-After, and all succeed', { timeout: 120_000 }, async () => {
    await new Promise((r) => setTimeout(r, 1_100)); // the tests above spent this tenant's bucket
    const statuses: number[] = [];
    const counting: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      statuses.push(res.status);
      return res;
    };
    const client = new Kiln({ url: k.url, apiKey: keys.sdkrate, fetch: counting, maxRetries: 20, retryBaseMs: 100 });
    const lists = await Promise.all(Array.from({ length: 8 }, () => client.functions.list()));
    expect(lists.every((l) => Array.isArray(l))).toBe(true);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(0);
    expect(statuses.filter((s) => s === 200).length).toBe(8);
  });

  it('without retries, the refusal is a QuotaExceededError with its Retry-After', async () => {
    await new Promise((r) => setTimeout(r, 1_100));
    const client = new Kiln({ url: k.url, apiKey: keys.sdkrate, maxRetries: 0 });
    const results = await Promise.all(Array.from({ length: 6 }, () => client.functions.list().catch((e: unknown) => e)));
    const refused = results.filter((r) => r instanceof QuotaExceededError);
    expect(refused.length).toBeGreaterThan(0);
    expect(refused[0]).toMatchObject({ status: 429, code: 'QuotaExceeded', quota: 'requestsPerSecond', retryAfterSeconds: 1 });
  });
});
