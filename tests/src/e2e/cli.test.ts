import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kiln } from '@kiln-sandbox/sdk';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

/** The `kiln` binary as `npx kiln` runs it in the repo (the bin link npm makes). */
const KILN_BIN = fileURLToPath(new URL('../../../node_modules/.bin/kiln', import.meta.url));
const PTY_DRIVE = fileURLToPath(new URL('../../../tests/src/support/pty-drive.py', import.meta.url));
const ADMIN = 'cli-admin-key-0123456789abcdef01234';

let k: TestKiln;
let key: string;
let dir: string;
let env: Record<string, string>;

/** Runs `kiln ...args` with this file's config (no KILN_URL/KILN_API_KEY unless given), stdin a pipe that gives `input`. */
function kiln(args: string[], extra: Record<string, string> = {}, input = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(KILN_BIN, args, { env: { ...env, ...extra }, timeout: 120_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
    child.stdin?.end(input);
  });
}

/** A step of support/pty-drive.py's script: a window size (SIGWINCH), keystrokes, a wait for output, a pause. */
type PtyStep = { size: [number, number] } | { send: string } | { expect: string; s?: number } | { sleep: number };

/** Runs `kiln ...args` on a real terminal (a pty, so stdin, stdout and stderr are TTYs) played by pty-drive.py. */
function kilnOnTty(args: string[], steps: PtyStep[]): Promise<{ ok: boolean; failed: PtyStep | null; output: string; code: number }> {
  return new Promise((resolve, reject) => {
    execFile('python3', [PTY_DRIVE, JSON.stringify(steps), '--', KILN_BIN, ...args], { env, timeout: 180_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`pty-drive failed: ${err.message} ${stderr}`));
      else resolve(JSON.parse(stdout) as { ok: boolean; failed: PtyStep | null; output: string; code: number });
    });
  });
}

/** Terminal output as lines of what a screen shows: escape sequences out, each line what follows its last carriage return. */
function screenLines(output: string): string[] {
  // eslint-disable-next-line no-control-regex
  const plain = output.replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07/g, '');
  return plain.split('\n').map((l) => (l.replace(/\r+$/, '').split('\r').pop() ?? '').trim());
}

beforeAll(async () => {
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 1 } }, python: null, shell: null, provided: null }, env: { KILN_ADMIN_API_KEYS: ADMIN } });
  const admin = { authorization: `Bearer ${ADMIN}` };
  expect((await k.call('POST', '/api/v1/admin/tenants', { id: 'cli' }, admin)).status).toBe(201);
  key = (await k.call('POST', '/api/v1/admin/tenants/cli/keys', {}, admin)).body.key as string;
  dir = mkdtempSync(join(tmpdir(), 'kiln-cli-'));
  env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, KILN_CONFIG: join(dir, 'config.json') };
}, 120_000);

afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await k?.stop();
});

describe('kiln CLI', () => {
  it('refuses a wrong key at login, then saves a good one (mode 600) that later commands use', async () => {
    const bad = await kiln(['login', '--url', k.url, '--key', 'kiln_wrong']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('Unauthorized');
    const good = await kiln(['login', '--url', k.url, '--key', key]);
    expect([good.code, good.stderr]).toEqual([0, '']);
    expect(statSync(join(dir, 'config.json')).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'))).toEqual({ url: k.url, apiKey: key });
    const templates = await kiln(['templates', 'ls', '--json']);
    expect(templates.code).toBe(0);
    expect(JSON.parse(templates.stdout).map((t: { name: string }) => t.name)).toContain('nodejs');
  });

  it('deploys a folder, invokes it with an event file, and fails with exit 1 when the handler throws', async () => {
    const fnDir = join(dir, 'adder');
    mkdirSync(fnDir);
    writeFileSync(join(fnDir, 'index.js'), 'exports.handler = async (e) => { console.log("adding"); if (e.fail) throw new Error("asked to fail"); return { sum: e.a + e.b }; };');
    const deploy = await kiln(['fn', 'deploy', fnDir]);
    expect(deploy.code, deploy.stderr).toBe(0);
    expect(deploy.stdout).toContain('deployed adder');
    writeFileSync(join(dir, 'event.json'), JSON.stringify({ a: 40, b: 2 }));
    const ok = await kiln(['fn', 'invoke', 'adder', '--event', join(dir, 'event.json')]);
    expect([ok.code, ok.stdout.trim()]).toEqual([0, '{"sum":42}']);
    expect(ok.stderr).toContain('adding');
    writeFileSync(join(dir, 'fail.json'), JSON.stringify({ fail: true }));
    const failed = await kiln(['fn', 'invoke', 'adder', '--event', join(dir, 'fail.json')]);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toContain('asked to fail');
    expect(JSON.parse((await kiln(['fn', 'ls', '--json'])).stdout).map((f: { name: string }) => f.name)).toEqual(['adder']);
  });

  it('creates a session, runs commands with their exit codes, copies files both ways, removes it', async () => {
    const created = await kiln(['sessions', 'create', '--template', 'nodejs']);
    expect(created.code, created.stderr).toBe(0);
    const id = created.stdout.trim();
    const listed = JSON.parse((await kiln(['sessions', 'ls', '--json'])).stdout) as Array<{ id: string }>;
    expect(listed.map((s) => s.id)).toContain(id);

    const hi = await kiln(['sessions', 'exec', id, '--', 'echo', 'hi', '&&', 'echo', 'err', '>&2']);
    expect([hi.code, hi.stdout, hi.stderr]).toEqual([0, 'hi\n', 'err\n']);
    expect((await kiln(['sessions', 'exec', id, '--', 'exit 3'])).code).toBe(3);

    const local = join(dir, 'up.bin');
    const bytes = randomBytes(3 * 1024 * 1024);
    writeFileSync(local, bytes);
    const up = await kiln(['sessions', 'cp', local, `${id}:data/up.bin`]);
    expect(up.code, up.stderr).toBe(0);
    // stderr is a pipe here: no progress bar in it.
    expect(up.stderr).toBe('');
    const sum = (await kiln(['sessions', 'exec', id, '--', 'sha256sum data/up.bin'])).stdout.split(' ')[0];
    expect(sum).toBe(createHash('sha256').update(bytes).digest('hex'));
    const back = join(dir, 'down.bin');
    const down = await kiln(['sessions', 'cp', `${id}:data/up.bin`, back]);
    expect([down.code, down.stderr]).toEqual([0, '']);
    expect(readFileSync(back).equals(bytes)).toBe(true);

    expect((await kiln(['sessions', 'rm', id])).code).toBe(0);
    const gone = await kiln(['sessions', 'exec', id, '--', 'true']);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain('SessionNotFound');
  });

  it('sessions shell: piped stdin runs in the remote shell, which ends with its exit code', async () => {
    const id = (await kiln(['sessions', 'create', '--template', 'nodejs'])).stdout.trim();
    try {
      const r = await kiln(['sessions', 'shell', id], {}, 'echo hi; exit 3\n');
      expect(r.code, r.stderr).toBe(3);
      // The terminal echoes the typed line too: "hi" must be a line of its own, the echo's output.
      expect(screenLines(r.stdout)).toContain('hi');
      // Input that ends without an exit: the Ctrl-D sent at its end is the shell's end of input.
      const eof = await kiln(['sessions', 'shell', id], {}, 'echo bye\n');
      expect([eof.code, screenLines(eof.stdout).includes('bye')]).toEqual([0, true]);
      expect((await kiln(['sessions', 'shell'])).code).toBe(2);
      const other = await kiln(['sessions', 'shell', 's-nosuch']);
      expect([other.code, other.stderr]).toEqual([1, expect.stringContaining('SessionNotFound')]);
    } finally {
      await kiln(['sessions', 'rm', id]);
    }
  });

  it('sessions shell on a terminal: raw keys (Ctrl-C reaches the remote shell, Ctrl-D ends it), its size follows SIGWINCH', async () => {
    const id = (await kiln(['sessions', 'create', '--template', 'nodejs'])).stdout.trim();
    try {
      const r = await kilnOnTty(['sessions', 'shell', id], [
        { size: [30, 100] },
        { sleep: 1 },
        { send: 'stty size\r' },
        { expect: '30 100' },
        { size: [20, 50] },
        { sleep: 1 },
        { send: 'stty size\r' },
        { expect: '20 50' },
        // Not raw, Ctrl-C would end kiln itself (SIGINT) instead of the remote sleep.
        { send: 'sleep 100\r' },
        { sleep: 1 },
        { send: '\u0003' },
        { sleep: 1 },
        { send: 'echo after-$((6*7))\r' },
        { expect: 'after-42' },
        { send: '(exit 7)\r' },
        { sleep: 1 },
        { send: '\u0004' },
      ]);
      expect(r.ok, `${JSON.stringify(r.failed)} in ${r.output}`).toBe(true);
      expect(r.code, r.output).toBe(7);
    } finally {
      await kiln(['sessions', 'rm', id]);
    }
  });

  it('sessions cp draws a progress bar on stderr when it is a terminal', async () => {
    const id = (await kiln(['sessions', 'create', '--template', 'nodejs'])).stdout.trim();
    try {
      const local = join(dir, 'bar.bin');
      writeFileSync(local, randomBytes(4 * 1024 * 1024));
      const up = await kilnOnTty(['sessions', 'cp', local, `${id}:bar.bin`], []);
      expect(up.code, up.output).toBe(0);
      expect(up.output).toMatch(/bar\.bin \[#{30}\] 100% 4\.0 MB\/4\.0 MB/);
      const down = await kilnOnTty(['sessions', 'cp', `${id}:bar.bin`, join(dir, 'bar-back.bin')], []);
      expect(down.code, down.output).toBe(0);
      expect(down.output).toMatch(/bar\.bin \[#{30}\] 100% 4\.0 MB\/4\.0 MB/);
      expect(readFileSync(join(dir, 'bar-back.bin')).equals(readFileSync(local))).toBe(true);
    } finally {
      await kiln(['sessions', 'rm', id]);
    }
  });

  it('follows new executions with logs -f', async () => {
    const follower = spawn(KILN_BIN, ['logs', '-f', '--function', 'adder', '--interval', '300'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let seen = '';
    follower.stdout.on('data', (d: Buffer) => (seen += d.toString('utf8')));
    try {
      // The invocation before: printed at once; the one after: printed when it finishes.
      await new Promise((r) => setTimeout(r, 1_000));
      const r = await new Kiln({ url: k.url, apiKey: key }).functions.invoke('adder', { a: 1, b: 1 });
      const deadline = Date.now() + 30_000;
      while (!seen.includes(r.id) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
      expect(seen).toContain(r.id);
      expect(seen).toMatch(new RegExp(`${r.id} adder:\\$LATEST succeeded`));
    } finally {
      follower.kill('SIGTERM');
    }
  });

  it('says what is wrong: usage (exit 2), an unreachable server (exit 1)', async () => {
    const usage = await kiln(['sessions', 'frobnicate']);
    expect([usage.code, usage.stderr]).toEqual([2, 'kiln: use: kiln sessions ls|create|rm|exec|shell|cp\n']);
    // A port nothing listens on: one that was just free.
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    await new Promise((r) => server.close(r));
    const down = await kiln(['sessions', 'ls'], { KILN_URL: `http://127.0.0.1:${port}` });
    expect(down.code).toBe(1);
    expect(down.stderr).toContain(`cannot reach Kiln at http://127.0.0.1:${port} (`);
    expect(down.stderr).toContain('ECONNREFUSED');
  });

  it('doctor checks this host and exits 0 when sandboxes can run', async () => {
    const d = await kiln(['doctor', '--json']);
    expect(d.code).toBe(0);
    const checks = JSON.parse(d.stdout) as Array<{ name: string; ok: boolean }>;
    expect(checks.find((c) => c.name === 'bubblewrap')?.ok).toBe(true);
    expect(checks.map((c) => c.name)).toEqual(['bubblewrap', 'user namespaces', 'cgroups', 'seccomp', 'pasta or slirp4netns', 'podman', 'NFS client tools', 'redis-server']);
  });

  it('keeps `kiln mcp` (a bad profile is a usage error)', async () => {
    const r = await kiln(['mcp', '--profile', 'nope']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown profile "nope"');
  });
});
