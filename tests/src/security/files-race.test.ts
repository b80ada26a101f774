import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inSession, startTestKiln, type TestKiln } from '../support/kiln.js';

/**
 * Attack: code inside a session swaps a workspace directory for a symlink to a host directory
 * (renameat2 RENAME_EXCHANGE in a tight loop) while a client drives the files API through that
 * directory. A host side that checks a path string and then walks it again follows the link
 * now and then: it reads host files, writes, renames and deletes on the host. The barrier is
 * the executor's fd walk beneath the pinned workspace root that never follows a link.
 */

/**
 * The driver stops after this many calls; the swapper after SWAP_MAX_SECONDS at the latest
 * (on a loaded machine), which ends the driver too. Unloaded, the REST run takes a few seconds.
 */
const REST_CALLS = 1500;
const MCP_CALLS = 400;
const SWAP_MAX_SECONDS = 20;

// Exchanges each pair (dir, link) atomically, so the name always exists as one or the other.
const SWAPPER = `
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
AT_FDCWD, RENAME_EXCHANGE = -100, 2
os.chdir('/workspace')
pairs = [(b'd', b'd.lnk'), (b'e', b'e.lnk')]
end = time.time() + float(sys.argv[1])
n = 0
# The test stops it early by writing /workspace/stop through the files API.
while time.time() < end and (n % 512 or not os.path.exists('stop')):
    for a, b in pairs:
        if libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) != 0:
            sys.exit('renameat2: ' + os.strerror(ctypes.get_errno()))
    n += 1
print('swaps', n)
`;

/** Every file under a host directory: name -> content, mode, mtime and inode. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, rel: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = lstatSync(p);
      const key = `${rel}${name}`;
      out[key] = `${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.ino} ${st.mtimeMs}`;
      if (st.isDirectory()) walk(p, `${key}/`);
      else if (st.isFile()) out[key] += ` ${readFileSync(p, 'utf8')}`;
    }
  };
  walk(dir, '');
  return out;
}

let k: TestKiln;
let hostDir: string;
const secret = `CANARY-${randomBytes(12).toString('hex')}`;

beforeAll(async () => {
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 1 } }, python: null, shell: null, provided: null } });
  // A root-owned host directory outside every workspace, holding canaries the sandbox cannot see.
  hostDir = mkdtempSync(join(tmpdir(), 'kiln-canary-'));
  mkdirSync(join(hostDir, 'sub'));
  mkdirSync(join(hostDir, 'tree'));
  for (const f of ['canary.txt', 'victim.txt', 'sub/canary.txt', 'tree/canary.txt', 'host-only.txt']) writeFileSync(join(hostDir, f), `${secret} ${f}\n`);
});
afterAll(async () => {
  await k?.stop();
  if (hostDir) rmSync(hostDir, { recursive: true, force: true });
});

const withSession = <T>(fn: (id: string) => Promise<T>): Promise<T> => inSession(k, fn);

/**
 * Lays out the racing pairs in the workspace and starts the swapper. `exited` resolves with
 * its output when it ends; `stop` asks it to end now.
 */
async function startSwapper(id: string): Promise<{ exited: Promise<string>; stop: () => Promise<string> }> {
  const setup = [
    'set -e',
    'mkdir -p d/sub d/tree e/etc',
    'echo inside > d/canary.txt; echo inside > d/victim.txt; echo inside > d/sub/canary.txt; echo inside > d/tree/canary.txt',
    'echo inside > e/etc/passwd; echo inside > e/etc/shadow',
    `ln -s '${hostDir}' d.lnk`,
    'ln -s / e.lnk',
  ].join('\n');
  const made = await k.call('POST', `/api/v1/sessions/${id}/process/run`, { command: 'sh', args: ['-c', setup] });
  expect(made.body, JSON.stringify(made.body)).toMatchObject({ exitCode: 0 });
  const started = await k.call('POST', `/api/v1/sessions/${id}/processes`, { command: 'python3', args: ['-c', SWAPPER, String(SWAP_MAX_SECONDS)] });
  expect(started.status, JSON.stringify(started.body)).toBe(201);
  const pid = started.body.pid as number;
  const exited = (async () => {
    for (;;) {
      const list = await k.call('GET', `/api/v1/sessions/${id}/processes`);
      const p = (list.body.processes as Array<{ pid: number; running: boolean; exitCode: number; stdout: string; stderr: string }>).find((x) => x.pid === pid);
      if (!p) throw new Error(`swapper ${pid} vanished from the process list`);
      if (!p.running) {
        expect(p.exitCode, p.stderr).toBe(0);
        return p.stdout;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  const stop = async (): Promise<string> => {
    const res = await fetch(`${k.url}/api/v1/sessions/${id}/files?path=stop`, { method: 'PUT', body: 'stop' });
    expect(res.status).toBe(200);
    return exited;
  };
  return { exited, stop };
}

/** Tallies what the driver saw; any entry in `breaches` is a hole in the barrier. */
interface Tally {
  ops: number;
  insideReads: number;
  refused: number;
  breaches: string[];
  statuses: Record<number, number>;
}

const newTally = (): Tally => ({ ops: 0, insideReads: 0, refused: 0, breaches: [], statuses: {} });

describe('host-side file operations under a symlink swap race', () => {
  it('never reads, writes, renames or deletes outside the workspace through the REST files API', async () => {
    const before = snapshot(hostDir);
    await withSession(async (id) => {
      const base = `${k.url}/api/v1/sessions/${id}`;
      const swapper = await startSwapper(id);
      const tally = newTally();
      let running = true;
      swapper.exited.then(
        () => (running = false),
        () => (running = false), // the failure itself is thrown by swapper.stop() below
      );

      const note = (op: string, status: number, body: string): void => {
        tally.ops++;
        tally.statuses[status] = (tally.statuses[status] ?? 0) + 1;
        // host-only.txt exists only in the host directory: seeing it at all is a breach.
        if (body.includes(secret) || /^root:/m.test(body) || body.includes('"host-only.txt"') || (op === 'stat' && status === 200))
          tally.breaches.push(`${op}: ${status} ${body.slice(0, 200)}`);
        if (status >= 500) tally.breaches.push(`${op}: internal error ${status} ${body.slice(0, 200)}`);
        if (status === 400 && body.includes('SymlinkNotFollowed')) tally.refused++;
      };
      const req = async (op: string, method: string, path: string, body?: string): Promise<void> => {
        const res = await fetch(`${base}${path}`, {
          method,
          body,
          headers: body === undefined ? {} : { 'content-type': method === 'PUT' ? 'application/octet-stream' : 'application/json' },
        });
        const text = await res.text();
        if (op.startsWith('read') && res.status === 200 && text === 'inside\n') tally.insideReads++;
        note(op, res.status, text);
      };
      const q = encodeURIComponent;
      const rounds: Array<(i: number) => Promise<void>> = [
        () => req('read', 'GET', `/files?path=d/canary.txt`),
        () => req('read sub', 'GET', `/files?path=d/sub/canary.txt`),
        () => req('read shadow', 'GET', `/files?path=e/etc/shadow`),
        () => req('read passwd', 'GET', `/files?path=e/etc/passwd`),
        () => req('stat', 'GET', `/files/stat?path=d/host-only.txt`),
        () => req('list', 'GET', `/files/list?path=d`),
        () => req('list etc', 'GET', `/files/list?path=e/etc`),
        (i) => req('write', 'PUT', `/files?path=${q(`d/w-${i}.txt`)}`, 'written'),
        (i) => req('write deep', 'PUT', `/files?path=${q(`d/sub/n-${i}/w.txt`)}`, 'written'),
        (i) => req('mkdir', 'POST', '/files/mkdir', JSON.stringify({ path: `d/m-${i}` })),
        (i) => req('rename out', 'POST', '/files/rename', JSON.stringify({ from: 'd/victim.txt', to: `stolen-${i}.txt` })),
        (i) => req('rename in', 'POST', '/files/rename', JSON.stringify({ from: `d/m-${i}`, to: `d/sub/moved-${i}` })),
        () => req('delete', 'DELETE', `/files?path=d/canary.txt`),
        () => req('delete tree', 'DELETE', `/files?path=d/tree&recursive=true`),
        () => req('delete sub file', 'DELETE', `/files?path=d/sub/canary.txt`),
      ];
      const worker = async (w: number): Promise<void> => {
        for (let i = w * 1_000_000; running && tally.ops < REST_CALLS; i++) await rounds[i % rounds.length]!(i);
      };
      await Promise.all(Array.from({ length: 6 }, (_, w) => worker(w)));
      const swaps = await swapper.stop();
      expect(swaps).toMatch(/^swaps \d+/);
      console.info(
        `files race (REST): ${tally.ops} operations, ${JSON.stringify(tally.statuses)}, ${tally.insideReads} inside reads, ${tally.refused} refused links; ${swaps.trim()}`,
      );
      expect(tally.breaches, JSON.stringify(tally.statuses)).toEqual([]);
      // The race was really run: the API saw both the directory and the link at that name (the
      // inside reads and refused links below). How many calls fit before the swapper's bound is
      // the machine's load (about 1 500 quiet, 57 with a 2 GiB upload beside it on 2 cores).
      expect(tally.ops).toBeGreaterThan(40);
      expect(tally.insideReads).toBeGreaterThan(0);
      expect(tally.refused).toBeGreaterThan(0);
      // Whatever the API did, nothing of the host's ended up in the workspace.
      const leak = await k.call('POST', `/api/v1/sessions/${id}/process/run`, {
        command: 'sh',
        args: ['-c', 'cat /workspace/stolen-* 2>/dev/null; grep -rh CANARY /workspace 2>/dev/null; true'],
      });
      expect(leak.body.stdout).not.toContain(secret);
    });
    expect(snapshot(hostDir)).toEqual(before);
  });

  it('holds through the MCP file tools too (file_read, file_write, file_copy, file_move, file_remove)', async () => {
    const before = snapshot(hostDir);
    await withSession(async (id) => {
      const transport = new StreamableHTTPClientTransport(new URL(`${k.url}/mcp/full`));
      const client = new Client({ name: 'kiln-race-test', version: '1.0.0' });
      await client.connect(transport);
      try {
        const swapper = await startSwapper(id);
        const tally = newTally();
        let running = true;
        swapper.exited.then(
          () => (running = false),
          () => (running = false), // the failure itself is thrown by swapper.stop() below
        );
        const tool = async (name: string, args: Record<string, unknown>): Promise<void> => {
          const r = (await client.callTool({ name, arguments: { sandbox_id: id, ...args } })) as {
            isError?: boolean;
            content: Array<{ text?: string }>;
            structuredContent?: unknown;
          };
          const text = r.content.map((c) => c.text ?? '').join('\n') + JSON.stringify(r.structuredContent ?? {});
          tally.ops++;
          const hostOnly = JSON.stringify(args).includes('host-only') && !r.isError;
          if (text.includes(secret) || /^root:/m.test(text) || text.includes('"host-only.txt"') || hostOnly)
            tally.breaches.push(`${name}: ${text.slice(0, 200)}`);
          if (text.includes('InternalError')) tally.breaches.push(`${name}: ${text.slice(0, 200)}`);
          if (text.includes('SymlinkNotFollowed')) tally.refused++;
          if (name === 'file_read' && !r.isError && text.includes('inside')) tally.insideReads++;
        };
        const rounds: Array<(i: number) => Promise<void>> = [
          () => tool('file_read', { path: 'd/canary.txt' }),
          () => tool('file_read', { path: 'e/etc/shadow' }),
          () => tool('file_list', { path: 'd' }),
          () => tool('file_info', { path: 'd/host-only.txt' }),
          (i) => tool('file_write', { path: `d/mcp-${i}.txt`, content: 'written' }),
          (i) => tool('file_copy', { source: 'd/host-only.txt', destination: `copied-${i}.txt` }),
          (i) => tool('file_copy', { source: 'd/sub', destination: `copied-dir-${i}` }),
          (i) => tool('file_copy', { source: 'd/victim.txt', destination: `d/sub/copy-${i}.txt` }),
          (i) => tool('file_move', { source: 'd/victim.txt', destination: `moved-${i}.txt` }),
          () => tool('file_remove', { path: 'd/tree', recursive: true }),
        ];
        const worker = async (w: number): Promise<void> => {
          for (let i = w * 1_000_000; running && tally.ops < MCP_CALLS; i++) await rounds[i % rounds.length]!(i);
        };
        await Promise.all(Array.from({ length: 4 }, (_, w) => worker(w)));
        await swapper.stop();
        console.info(`files race (MCP): ${tally.ops} tool calls, ${tally.insideReads} inside reads, ${tally.refused} refused links`);
        expect(tally.breaches).toEqual([]);
        expect(tally.ops).toBeGreaterThan(50);
        expect(tally.insideReads).toBeGreaterThan(0);
        expect(tally.refused).toBeGreaterThan(0);
        const leak = await k.call('POST', `/api/v1/sessions/${id}/process/run`, {
          command: 'sh',
          args: ['-c', 'grep -rh CANARY /workspace 2>/dev/null; true'],
        });
        expect(leak.body.stdout).not.toContain(secret);
      } finally {
        await client.close();
      }
    });
    expect(snapshot(hostDir)).toEqual(before);
  });
});
