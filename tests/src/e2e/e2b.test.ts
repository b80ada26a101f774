import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { AuthenticationError, CommandExitError, FileNotFoundError, FilesystemEventType, InvalidArgumentError, NotFoundError, Sandbox, TimeoutError, type FilesystemEvent } from 'e2b';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

/**
 * The official `e2b` SDK, unchanged, against a Kiln this file starts: E2B_API_URL and
 * E2B_SANDBOX_URL point at Kiln's /e2b prefixes, E2B_API_KEY is a Kiln key in E2B's own format
 * (`e2b_` and hex digits, which SDKs that check the format accept). Tenants alpha and beta each hold a key; every sandbox a test makes is killed
 * in `finally`.
 */
const ALPHA = 'e2b_a1a1a1a10123456789abcdef0123456789abcdef';
const BETA = 'e2b_b2b2b2b20123456789abcdef0123456789abcdef';
const ADMIN = 'e2b_adadadad0123456789abcdef0123456789abcdef';

let k: TestKiln;
const as = (key: string) => ({ authorization: `Bearer ${key}` });

beforeAll(async () => {
  k = await startTestKiln({
    templates: { nodejs: { pool: { minIdle: 2 } }, python: null, shell: null, provided: null },
    env: { KILN_API_KEYS: `alpha:${ALPHA},beta:${BETA}`, KILN_ADMIN_API_KEYS: ADMIN },
  });
  for (const id of ['alpha', 'beta']) expect((await k.call('POST', '/api/v1/admin/tenants', { id }, as(ADMIN))).status).toBe(201);
  process.env.E2B_API_URL = `${k.url}/e2b`;
  process.env.E2B_SANDBOX_URL = `${k.url}/e2b/sandbox`;
  process.env.E2B_API_KEY = ALPHA;
});
afterAll(async () => {
  await k?.stop();
});

/** Creates a sandbox (alpha's unless `opts.apiKey` says otherwise), runs `fn`, and kills it whatever happens. */
async function withSandbox<T>(fn: (sbx: Sandbox) => Promise<T>, opts: Parameters<typeof Sandbox.create>[1] = {}): Promise<T> {
  const sbx = await Sandbox.create('nodejs', opts);
  try {
    return await fn(sbx);
  } catch (err) {
    console.error(`sandbox ${sbx.sandboxId} failed`);
    throw err;
  } finally {
    await Sandbox.kill(sbx.sandboxId, opts.apiKey ? { apiKey: opts.apiKey } : {});
  }
}

describe('E2B control API', () => {
  it('creates a sandbox with template, metadata, env and timeout, and gets, lists, times and kills it', async () => {
    const sbx = await Sandbox.create('nodejs', { metadata: { owner: 'alice', run: 'e2b-1' }, envs: { GREETING: 'hello' }, timeoutMs: 120_000 });
    try {
      expect(sbx.sandboxId).toMatch(/^ses_/);
      const info = await sbx.getInfo();
      expect(info).toMatchObject({ sandboxId: sbx.sandboxId, templateId: 'nodejs', metadata: { owner: 'alice', run: 'e2b-1' }, state: 'running' });
      expect(info.endAt.getTime() - info.startedAt.getTime()).toBe(120_000);
      const out = await sbx.commands.run('echo "$GREETING from $(pwd)"');
      expect(out).toMatchObject({ exitCode: 0, stdout: 'hello from /home/user\n' });

      const found = await Sandbox.list({ query: { metadata: { run: 'e2b-1' } } }).nextItems();
      expect(found.map((s) => s.sandboxId)).toEqual([sbx.sandboxId]);
      expect(await Sandbox.list({ query: { metadata: { run: 'nobody' } } }).nextItems()).toEqual([]);
      // Kiln has no paused sandboxes.
      expect(await Sandbox.list({ query: { metadata: { run: 'e2b-1' }, state: ['paused'] } }).nextItems()).toEqual([]);

      await sbx.setTimeout(600_000);
      const later = await Sandbox.getInfo(sbx.sandboxId);
      expect(later.endAt.getTime()).toBeGreaterThan(Date.now() + 500_000);
      const again = await Sandbox.connect(sbx.sandboxId);
      expect((await again.commands.run('echo connected')).stdout).toBe('connected\n');
    } finally {
      expect(await Sandbox.kill(sbx.sandboxId)).toBe(true);
    }
    expect(await Sandbox.kill(sbx.sandboxId)).toBe(false);
    await expect(Sandbox.getInfo(sbx.sandboxId)).rejects.toBeInstanceOf(NotFoundError);
  });

  it('pages through a list with limit and nextToken', async () => {
    const made = await Promise.all([0, 1, 2].map(() => Sandbox.create('nodejs', { metadata: { run: 'paging' } })));
    try {
      const pager = Sandbox.list({ query: { metadata: { run: 'paging' } }, limit: 2 });
      const first = await pager.nextItems();
      expect(first).toHaveLength(2);
      expect(pager.hasNext).toBe(true);
      const second = await pager.nextItems();
      expect(second).toHaveLength(1);
      expect(pager.hasNext).toBe(false);
      expect([...first, ...second].map((s) => s.sandboxId).sort()).toEqual(made.map((s) => s.sandboxId).sort());
    } finally {
      for (const s of made) await s.kill();
    }
  });

  it('answers unknown templates, bad input and missing or unknown keys with E2B errors', async () => {
    await expect(Sandbox.create('no-such-template')).rejects.toThrow(/404.*no-such-template/);
    await expect(Sandbox.create('nodejs', { apiKey: 'e2b_00000000000000000000000000000000deadbeef' })).rejects.toBeInstanceOf(AuthenticationError);
    const res = await fetch(`${k.url}/e2b/v2/sandboxes`, { method: 'POST', headers: { 'x-api-key': ALPHA, 'content-type': 'application/json' }, body: JSON.stringify({ templateID: 'nodejs', timeout: -1 }) });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ code: 400, message: expect.stringMatching(/timeout/) });
    const none = await fetch(`${k.url}/e2b/v2/sandboxes`);
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ code: 401 });
    const unknown = await fetch(`${k.url}/e2b/templates`, { headers: { 'x-api-key': ALPHA } });
    expect(unknown.status).toBe(501);
    expect(await unknown.json()).toMatchObject({ code: 501, message: expect.stringMatching(/does not implement/) });
    expect((await fetch(`${k.url}/e2b/health`)).status).toBe(200);
    // The Python SDK's default: asking for the internet on a template without network gets none.
    await withSandbox(async (sbx) => expect((await sbx.getInfo()).allowInternetAccess).toBe(false), { allowInternetAccess: true });
    const doc = (await (await fetch(`${k.url}/api/v1/openapi.json`)).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/e2b/v2/sandboxes', '/e2b/sandboxes/{sandboxID}', '/e2b/sandboxes/{sandboxID}/timeout', '/e2b/v2/sandboxes/{sandboxID}/connect']));
  });
});

describe('E2B commands', () => {
  it('runs commands in the foreground with callbacks, exit codes and CommandExitError', async () => {
    await withSandbox(async (sbx) => {
      const out: string[] = [];
      const err: string[] = [];
      const ok = await sbx.commands.run('echo out; echo err >&2; node -v', { onStdout: (d) => void out.push(d), onStderr: (d) => void err.push(d) });
      expect(ok.exitCode).toBe(0);
      expect(ok.stdout).toMatch(/^out\nv20\./);
      expect(out.join('')).toBe(ok.stdout);
      expect(err.join('')).toBe('err\n');
      const failed = await sbx.commands.run('echo partial; exit 3').catch((e: unknown) => e);
      expect(failed).toBeInstanceOf(CommandExitError);
      expect((failed as CommandExitError).exitCode).toBe(3);
      expect((failed as CommandExitError).stdout).toBe('partial\n');
      const cwd = await sbx.commands.run('pwd && ls', { cwd: '/tmp' });
      expect(cwd.stdout).toBe('/tmp\n');
    });
  });

  it('runs in the background: wait, list, connect by pid, sendStdin, closeStdin and kill', async () => {
    await withSandbox(async (sbx) => {
      const bg = await sbx.commands.run('sleep 0.5; echo done', { background: true });
      const listed = await sbx.commands.list();
      expect(listed.map((p) => p.pid)).toContain(bg.pid);
      expect((await bg.wait()).stdout).toBe('done\n');

      const cat = await sbx.commands.run('cat', { background: true, stdin: true });
      const seen: string[] = [];
      const attached = await sbx.commands.connect(cat.pid, { onStdout: (d) => void seen.push(d) });
      await sbx.commands.sendStdin(cat.pid, 'hello stdin\n');
      await cat.closeStdin();
      const result = await attached.wait();
      expect(result.stdout).toBe('hello stdin\n');
      expect(seen.join('')).toBe('hello stdin\n');

      const sleeper = await sbx.commands.run('sleep 600', { background: true });
      expect(await sleeper.kill()).toBe(true);
      const killed = await sleeper.wait().catch((e: unknown) => e);
      expect(killed).toBeInstanceOf(CommandExitError);
      expect(await sbx.commands.kill(sleeper.pid)).toBe(false);
      await expect(sbx.commands.connect(999_999)).rejects.toBeInstanceOf(NotFoundError);
    });
  });

  it('raises TimeoutError for a command past its timeoutMs', async () => {
    await withSandbox(async (sbx) => {
      await expect(sbx.commands.run('sleep 30', { timeoutMs: 1000 })).rejects.toBeInstanceOf(TimeoutError);
    });
  });
});

describe('E2B sandbox routes and bad input', () => {
  it('answers malformed Connect calls, uploads and paths with 4xx, and keeps serving', async () => {
    await withSandbox(async (sbx) => {
      const token = (sbx as unknown as { envdAccessToken: string }).envdAccessToken;
      const headers = { 'e2b-sandbox-id': sbx.sandboxId, 'x-access-token': token };
      const post = (path: string, body: string, type: string) => fetch(`${k.url}/e2b/sandbox${path}`, { method: 'POST', headers: { ...headers, 'content-type': type }, body });
      const bad = await post('/process.Process/SendInput', '{"process": ', 'application/json');
      expect(bad.status).toBe(400);
      expect(await bad.json()).toMatchObject({ code: 'invalid_argument' });
      const unselected = await post('/process.Process/SendInput', '{"input": {"stdin": "eA=="}}', 'application/json');
      expect(await unselected.json()).toMatchObject({ code: 'invalid_argument', message: expect.stringMatching(/pid or a tag/) });
      // A streaming method wants Connect's streaming content type.
      expect((await post('/process.Process/Start', '{}', 'application/json')).status).toBe(415);
      const noCmd = await post('/process.Process/SendSignal', '{"process": {"pid": 1}, "signal": "SIGNAL_UNSPECIFIED"}', 'application/json');
      expect(await noCmd.json()).toMatchObject({ code: 'invalid_argument', message: expect.stringMatching(/SIGKILL/) });
      expect((await post('/process.Process/Nope', '{}', 'application/json')).status).toBe(501);
      const multipart = await post('/files?path=x.txt', '--nothing-here', 'multipart/form-data');
      expect(multipart.status).toBe(400);
      expect((await post('/files', 'data', 'application/octet-stream')).status).toBe(400);
      const outside = await post(`/files?path=${encodeURIComponent('/home/user/../../etc/x')}`, 'data', 'application/octet-stream');
      expect(outside.status).toBe(400);
      expect(await outside.json()).toMatchObject({ code: 400, message: expect.stringMatching(/PathOutsideWorkspace/) });
      const nul = await fetch(`${k.url}/e2b/sandbox/files?path=a%00b`, { headers });
      expect(nul.status).toBe(400);
      expect((await fetch(`${k.url}/e2b/sandbox/health`, { headers })).status).toBe(204);

      // StreamInput (client streaming; the JS SDK does not use it), as enveloped Connect JSON frames.
      const cat = await sbx.commands.run('cat', { background: true, stdin: true });
      const frame = (msg: unknown): Buffer => {
        const json = Buffer.from(JSON.stringify(msg));
        const head = Buffer.alloc(5);
        head.writeUInt32BE(json.length, 1);
        return Buffer.concat([head, json]);
      };
      const stdin = (text: string) => ({ data: { input: { stdin: Buffer.from(text).toString('base64') } } });
      const streamed = await fetch(`${k.url}/e2b/sandbox/process.Process/StreamInput`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/connect+json' },
        body: Buffer.concat([frame({ start: { process: { pid: cat.pid } } }), frame(stdin('abc\n')), frame({ keepalive: {} }), frame(stdin('def\n'))]),
      });
      expect(streamed.status).toBe(200);
      // The answer, then the end of the stream (flag 2) without an error.
      expect(parseFrames(Buffer.from(await streamed.arrayBuffer()))).toEqual([{ flags: 0, json: {} }, { flags: 2, json: {} }]);
      await cat.closeStdin();
      expect((await cat.wait()).stdout).toBe('abc\ndef\n');

      // A quiet process's stream carries keepalives at the interval the client asks for.
      const started = await fetch(`${k.url}/e2b/sandbox/process.Process/Start`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/connect+json', 'keepalive-ping-interval': '1' },
        body: frame({ process: { cmd: '/bin/bash', args: ['-l', '-c', 'sleep 2.5; echo woke'] } }),
      });
      const kinds = parseFrames(Buffer.from(await started.arrayBuffer())).map((f) => (f.flags === 2 ? 'endOfStream' : Object.keys((f.json as { event: object }).event)[0]));
      expect(kinds[0]).toBe('start');
      expect(kinds).toContain('keepalive');
      expect(kinds.slice(-3)).toEqual(['data', 'end', 'endOfStream']);
      expect((await sbx.commands.run('echo still serving')).stdout).toBe('still serving\n');
    });
  });
});

describe('E2B tenancy and access tokens', () => {
  it("keeps each tenant to its own sandboxes, and the sandbox routes to the sandbox's own token", async () => {
    await withSandbox(async (alpha) => {
      await withSandbox(
        async (beta) => {
          // Another tenant's key: the sandbox does not exist.
          await expect(Sandbox.connect(alpha.sandboxId, { apiKey: BETA })).rejects.toBeInstanceOf(NotFoundError);
          await expect(Sandbox.getInfo(alpha.sandboxId, { apiKey: BETA })).rejects.toBeInstanceOf(NotFoundError);
          expect(await Sandbox.kill(alpha.sandboxId, { apiKey: BETA })).toBe(false);
          const betaList = await Sandbox.list({ apiKey: BETA }).nextItems();
          expect(betaList.map((s) => s.sandboxId)).toEqual([beta.sandboxId]);
          // Beta's token on alpha's sandbox id, and no token at all: refused, as for an unknown sandbox.
          const forged = await fetch(`${k.url}/e2b/sandbox/process.Process/List`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'e2b-sandbox-id': alpha.sandboxId, 'x-access-token': (beta as unknown as { envdAccessToken: string }).envdAccessToken },
            body: '{}',
          });
          expect(forged.status).toBe(401);
          const forgedBody = (await forged.json()) as { code: string; message: string };
          expect(forgedBody).toMatchObject({ code: 'unauthenticated' });
          // An unknown sandbox gets the same answer: without the token, no one learns which ids exist.
          const unknownId = `ses_${'0'.repeat(32)}`;
          const unknown = await fetch(`${k.url}/e2b/sandbox/process.Process/List`, { method: 'POST', headers: { 'content-type': 'application/json', 'e2b-sandbox-id': unknownId, 'x-access-token': 'anything' }, body: '{}' });
          expect(unknown.status).toBe(401);
          expect(JSON.stringify(await unknown.json()).replaceAll(unknownId, '<id>')).toBe(JSON.stringify(forgedBody).replaceAll(alpha.sandboxId, '<id>'));
          const bare = await fetch(`${k.url}/e2b/sandbox/process.Process/List`, { method: 'POST', headers: { 'content-type': 'application/json', 'e2b-sandbox-id': alpha.sandboxId, 'x-api-key': ALPHA }, body: '{}' });
          expect(bare.status).toBe(401);
          const wrongPort = await fetch(`${k.url}/e2b/sandbox/process.Process/List`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'e2b-sandbox-id': alpha.sandboxId, 'e2b-sandbox-port': '49999', 'x-access-token': (alpha as unknown as { envdAccessToken: string }).envdAccessToken },
            body: '{}',
          });
          // Kiln serves only envd's port: Connect's Unavailable (503), the SDK's "sandbox is gone".
          expect(wrongPort.status).toBe(503);
          expect(await wrongPort.json()).toMatchObject({ code: 'unavailable', message: expect.stringMatching(/49983/) });
          // A read-only key of alpha's lists and gets, but cannot connect (which shows the token) or kill.
          const reader = await k.call('POST', '/api/v1/admin/tenants/alpha/keys', { scopes: ['read'] }, as(ADMIN));
          expect(reader.status, JSON.stringify(reader.body)).toBe(201);
          const readKey = { apiKey: reader.body.key as string, validateApiKey: false };
          expect((await Sandbox.getInfo(alpha.sandboxId, readKey)).sandboxId).toBe(alpha.sandboxId);
          await expect(Sandbox.connect(alpha.sandboxId, readKey)).rejects.toThrow(/403.*sessions/);
          await expect(Sandbox.kill(alpha.sandboxId, readKey)).rejects.toThrow(/403/);
          // A sandbox object built with a wrong token: the SDK's AuthenticationError.
          const impostor = await Sandbox.connect(beta.sandboxId, { apiKey: BETA });
          Object.assign(impostor, { envdAccessToken: 'wrong' });
          await expect(impostor.commands.run('id')).rejects.toBeInstanceOf(AuthenticationError);
          expect((await alpha.commands.run('echo mine')).stdout).toBe('mine\n');
        },
        { apiKey: BETA },
      );
    });
  });
});

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('E2B files', () => {
  it('writes and reads text and bytes in /home/user, which commands see as their home', async () => {
    await withSandbox(async (sbx) => {
      const info = await sbx.files.write('/home/user/notes/hello.txt', 'hello from the SDK\n');
      expect(info).toMatchObject({ name: 'hello.txt', path: '/home/user/notes/hello.txt' });
      expect(await sbx.files.read('/home/user/notes/hello.txt')).toBe('hello from the SDK\n');
      expect((await sbx.commands.run('cat notes/hello.txt && cat /workspace/notes/hello.txt')).stdout).toBe('hello from the SDK\n'.repeat(2));
      const bytes = new Uint8Array([0, 1, 2, 255, 254, 10, 13]);
      await sbx.files.write('bin.dat', bytes.buffer);
      expect(await sbx.files.read('/home/user/bin.dat', { format: 'bytes' })).toEqual(bytes);
      await sbx.commands.run('printf made-by-bash > /home/user/from-bash.txt');
      expect(await sbx.files.read('from-bash.txt')).toBe('made-by-bash');
      await expect(sbx.files.read('/home/user/missing.txt')).rejects.toBeInstanceOf(FileNotFoundError);
      await expect(sbx.files.read('/etc/passwd')).rejects.toBeInstanceOf(InvalidArgumentError);
    });
  });

  it('uploads and downloads a 50 MB file, as multipart and as a stream', async () => {
    await withSandbox(async (sbx) => {
      const big = new Uint8Array(50 * 1024 * 1024);
      for (let i = 0; i < big.length; i += 4096) big[i] = (i / 4096) % 251;
      await sbx.files.write('/home/user/big.bin', big.buffer);
      const back = await sbx.files.read('/home/user/big.bin', { format: 'bytes' });
      expect(back.length).toBe(big.length);
      expect(sha(back)).toBe(sha(big));
      const sum = await sbx.commands.run('sha256sum big.bin');
      expect(sum.stdout.split(' ')[0]).toBe(sha(big));

      // A ReadableStream body goes as application/octet-stream, streamed.
      let sent = 0;
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent >= big.length) return controller.close();
          const part = big.subarray(sent, sent + 1024 * 1024);
          sent += part.length;
          controller.enqueue(part);
        },
      });
      await sbx.files.write('/home/user/streamed.bin', stream);
      const streamedBack = await sbx.files.read('/home/user/streamed.bin', { format: 'stream' });
      const parts: Uint8Array[] = [];
      for await (const chunk of streamedBack as unknown as AsyncIterable<Uint8Array>) parts.push(chunk);
      expect(sha(Buffer.concat(parts))).toBe(sha(big));
    });
  });

  it('lists with depth, and checks, stats, renames, removes and makes directories', async () => {
    await withSandbox(async (sbx) => {
      await sbx.files.write([
        { path: '/home/user/tree/a.txt', data: 'a' },
        { path: '/home/user/tree/sub/b.txt', data: 'bb' },
        { path: '/home/user/tree/sub/deeper/c.txt', data: 'ccc' },
      ]);
      const shallow = await sbx.files.list('/home/user/tree');
      expect(shallow.map((e) => [e.name, e.type])).toEqual([
        ['a.txt', 'file'],
        ['sub', 'dir'],
      ]);
      const deep = await sbx.files.list('/home/user/tree', { depth: 3 });
      expect(deep.map((e) => e.path)).toEqual(['/home/user/tree/a.txt', '/home/user/tree/sub', '/home/user/tree/sub/b.txt', '/home/user/tree/sub/deeper', '/home/user/tree/sub/deeper/c.txt']);
      expect(await sbx.files.exists('/home/user/tree/sub/b.txt')).toBe(true);
      expect(await sbx.files.exists('/home/user/tree/nope')).toBe(false);
      const info = await sbx.files.getInfo('/home/user/tree/sub/b.txt');
      expect(info).toMatchObject({ name: 'b.txt', type: 'file', size: 2, path: '/home/user/tree/sub/b.txt', permissions: '-rw-r--r--' });
      expect(info.modifiedTime?.getTime()).toBeGreaterThan(Date.now() - 600_000);
      const moved = await sbx.files.rename('/home/user/tree/a.txt', '/home/user/tree/moved/a2.txt');
      expect(moved).toMatchObject({ name: 'a2.txt', path: '/home/user/tree/moved/a2.txt' });
      expect(await sbx.files.read('/home/user/tree/moved/a2.txt')).toBe('a');
      expect(await sbx.files.makeDir('/home/user/tree/new/dir')).toBe(true);
      expect(await sbx.files.makeDir('/home/user/tree/new/dir')).toBe(false);
      await sbx.files.remove('/home/user/tree/sub');
      expect(await sbx.files.exists('/home/user/tree/sub')).toBe(false);
      await expect(sbx.files.remove('/home/user/tree/sub')).rejects.toBeInstanceOf(FileNotFoundError);
    });
  });

  it('watches a directory and sees a file a process creates, changes and removes', async () => {
    await withSandbox(async (sbx) => {
      await sbx.files.makeDir('/home/user/watched');
      const events: FilesystemEvent[] = [];
      const handle = await sbx.files.watchDir('/home/user/watched', (e) => void events.push(e));
      try {
        await sbx.commands.run('echo one > watched/made.txt');
        await waitFor(() => events.some((e) => e.name === 'made.txt' && e.type === FilesystemEventType.CREATE));
        await sbx.commands.run('echo two-longer >> watched/made.txt');
        await waitFor(() => events.some((e) => e.name === 'made.txt' && e.type === FilesystemEventType.WRITE));
        await sbx.commands.run('rm watched/made.txt');
        await waitFor(() => events.some((e) => e.name === 'made.txt' && e.type === FilesystemEventType.REMOVE));
      } finally {
        await handle.stop();
      }
      await expect(sbx.files.watchDir('/home/user/not-there', () => undefined)).rejects.toBeInstanceOf(FileNotFoundError);

      // The polling watcher (the Python SDK's sync watch_dir), called as Connect JSON.
      const rpc = async (method: string, body: unknown, token = (sbx as unknown as { envdAccessToken: string }).envdAccessToken) => {
        const res = await fetch(`${k.url}/e2b/sandbox/filesystem.Filesystem/${method}`, { method: 'POST', headers: { 'content-type': 'application/json', 'e2b-sandbox-id': sbx.sandboxId, 'x-access-token': token }, body: JSON.stringify(body) });
        return { status: res.status, body: (await res.json()) as any };
      };
      const created = await rpc('CreateWatcher', { path: '/home/user/watched', recursive: true });
      expect(created.status, JSON.stringify(created.body)).toBe(200);
      const watcherId = created.body.watcherId as string;
      await sbx.commands.run('mkdir -p watched/deep && echo x > watched/deep/polled.txt');
      const polled = await rpc('GetWatcherEvents', { watcherId });
      expect(polled.body.events).toEqual(expect.arrayContaining([{ name: 'deep', type: 'EVENT_TYPE_CREATE' }, { name: 'deep/polled.txt', type: 'EVENT_TYPE_CREATE' }]));
      expect((await rpc('GetWatcherEvents', { watcherId })).body).toEqual({});
      expect((await rpc('GetWatcherEvents', { watcherId }, 'not-the-token')).status).toBe(401);
      expect((await rpc('RemoveWatcher', { watcherId })).status).toBe(200);
      expect(await rpc('GetWatcherEvents', { watcherId })).toMatchObject({ status: 404, body: { code: 'not_found' } });
    });
  });

  it('never reads, writes or lists through a link that points out of the workspace', async () => {
    await withSandbox(async (sbx) => {
      await sbx.commands.run('ln -s /etc /home/user/etc-link && ln -s /etc/passwd /home/user/passwd-link');
      const link = await sbx.files.getInfo('/home/user/etc-link');
      expect(link).toMatchObject({ type: 'symlink', symlinkTarget: '/etc' });
      await expect(sbx.files.read('/home/user/passwd-link')).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(sbx.files.read('/home/user/etc-link/passwd')).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(sbx.files.write('/home/user/etc-link/kiln-e2b-planted', 'x')).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(sbx.files.write('/home/user/passwd-link', 'x')).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(sbx.files.list('/home/user/etc-link')).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(sbx.files.makeDir('/home/user/etc-link/kiln-e2b-dir')).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(sbx.files.rename('/home/user/etc-link/hostname', '/home/user/stolen')).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(sbx.files.remove('/home/user/etc-link/hostname')).rejects.toBeInstanceOf(InvalidArgumentError);
      expect(existsSync('/etc/kiln-e2b-planted')).toBe(false);
      expect(existsSync('/etc/kiln-e2b-dir')).toBe(false);
      expect(existsSync('/etc/hostname')).toBe(true);
      // The link itself can be removed, as a link.
      await sbx.files.remove('/home/user/etc-link');
      expect(await sbx.files.exists('/home/user/etc-link')).toBe(false);
    });
  });
});

/** The enveloped messages of a Connect streaming body: a flags byte, a length, JSON. */
function parseFrames(body: Buffer): { flags: number; json: unknown }[] {
  const frames: { flags: number; json: unknown }[] = [];
  for (let o = 0; o < body.length; o += 5 + body.readUInt32BE(o + 1)) frames.push({ flags: body[o] as number, json: JSON.parse(body.subarray(o + 5, o + 5 + body.readUInt32BE(o + 1)).toString()) });
  return frames;
}

/** Polls `check` until it holds (the watch reports changes after its next look). */
async function waitFor(check: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !check(); i++) await new Promise((r) => setTimeout(r, 100));
  expect(check()).toBe(true);
}

describe('E2B terminals', () => {
  it('opens a PTY, types into it, resizes it, exits with a code, and kills another', async () => {
    await withSandbox(async (sbx) => {
      const decoder = new TextDecoder();
      let screen = '';
      const term = await sbx.pty.create({ cols: 80, rows: 24, onData: (d) => void (screen += decoder.decode(d, { stream: true })) });
      const type = (text: string) => sbx.pty.sendInput(term.pid, new TextEncoder().encode(text));
      await type('echo $((6*7)) $(tty) $PWD\n');
      await waitFor(() => /42 \/dev\/pts\/\d+ \/home\/user/.test(screen));
      await type('stty size\n');
      await waitFor(() => screen.includes('24 80'));
      await sbx.pty.resize(term.pid, { cols: 100, rows: 30 });
      await type('stty size\n');
      await waitFor(() => screen.includes('30 100'));
      // A second client attaches to the running terminal and sees what is typed from now on.
      let seen = '';
      const watcher = await sbx.pty.connect(term.pid, { onData: (d) => void (seen += decoder.decode(d, { stream: true })) });
      await type('echo attached-$((1+1))\n');
      await waitFor(() => seen.includes('attached-2'));
      await watcher.disconnect();
      await type('exit 3\n');
      const ended = await term.wait().catch((e: unknown) => e);
      expect(ended).toBeInstanceOf(CommandExitError);
      expect((ended as CommandExitError).exitCode).toBe(3);

      const other = await sbx.pty.create({ cols: 80, rows: 24, onData: () => undefined });
      expect(await sbx.pty.kill(other.pid)).toBe(true);
      await expect(other.wait()).rejects.toBeInstanceOf(CommandExitError);
      expect(await sbx.pty.kill(other.pid)).toBe(false);
    });
  });
});
