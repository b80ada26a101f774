import { execFileSync, spawn } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ReadStream } from 'node:fs';
import { ErrorCode, errorCodeToJSON } from '@kiln/proto/executor/errors';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SandboxSpec } from '../sandbox/spec.js';
import { AgentError } from '../errors.js';
import { WorkspaceFiles } from './ops.js';

const UID = 23456;
const GID = 23457;

let base: string;
let ws: string;
let outside: string;
let files: WorkspaceFiles;

function specFor(workspaceDir: string, maxFileMB = 1): SandboxSpec {
  return {
    id: 'sbx-test',
    runner: 'nodejs',
    cpus: 1,
    diskMB: 64,
    workspaceDir,
    taskDir: '',
    runnerDir: '',
    etcDir: '',
    memoryMB: 128,
    tmpMB: 16,
    maxProcesses: 16,
    maxOpenFiles: 64,
    maxFileMB,
    allowNetwork: false,
    hostUid: UID,
    hostGid: GID,
  };
}

async function text(stream: ReadStream): Promise<string> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts).toString();
}

async function* chunks(...parts: string[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield await Promise.resolve(Buffer.from(p));
}

/** The code a failed call was refused with: its ErrorCode's name without the prefix. */
async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return err instanceof AgentError ? errorCodeToJSON(err.code).replace(/^ERROR_CODE_/, '') : String(err);
  }
  return 'resolved';
}

/** Everything under a host directory, to show it was not touched. */
function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string): void => {
    for (const n of readdirSync(d).sort()) {
      const st = lstatSync(join(d, n));
      out.push(`${rel}${n} ${st.mode.toString(8)} ${st.uid} ${st.mtimeMs}${st.isFile() ? ` ${readFileSync(join(d, n), 'utf8')}` : ''}`);
      if (st.isDirectory()) walk(join(d, n), `${rel}${n}/`);
    }
  };
  walk(dir, '');
  return out;
}

const openFds = (): number => readdirSync('/proc/self/fd').length;

beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'kiln-files-'));
  ws = join(base, 'workspace');
  outside = join(base, 'host');
  mkdirSync(ws);
  mkdirSync(join(outside, 'sub'), { recursive: true });
  writeFileSync(join(outside, 'secret.txt'), 'host secret\n');
  writeFileSync(join(outside, 'sub', 'secret.txt'), 'host secret\n');
  files = new WorkspaceFiles(specFor(ws));
});
afterEach(() => {
  rmSync(base, { recursive: true, force: true });
});

describe('WorkspaceFiles', () => {
  it('writes, reads, lists, stats, renames and removes, owning what it creates', async () => {
    const w = await files.write('a/b/c.txt', chunks('hello ', 'world'), 0o640);
    expect(w).toMatchObject({ path: '/workspace/a/b/c.txt', name: 'c.txt', type: 'file', size: 11, mode: 0o640 });
    expect(await text(await files.read('/workspace/a/b/c.txt'))).toBe('hello world');
    for (const p of ['a', 'a/b', 'a/b/c.txt']) expect(statSync(join(ws, p))).toMatchObject({ uid: UID, gid: GID });
    expect((await files.list('a')).map((e) => [e.name, e.type])).toEqual([['b', 'dir']]);
    expect(await files.stat('.')).toMatchObject({ path: '/workspace', name: 'workspace', type: 'dir' });
    expect(await files.mkdir('x/y')).toMatchObject({ path: '/workspace/x/y', type: 'dir' });
    expect(statSync(join(ws, 'x'))).toMatchObject({ uid: UID, gid: GID });
    expect(await files.rename('a/b/c.txt', 'x/y/z/moved.txt')).toMatchObject({ path: '/workspace/x/y/z/moved.txt', size: 11 });
    expect(statSync(join(ws, 'x/y/z'))).toMatchObject({ uid: UID, gid: GID });
    // An existing file is replaced, not appended to.
    await files.write('x/y/z/moved.txt', chunks('new'));
    expect(readFileSync(join(ws, 'x/y/z/moved.txt'), 'utf8')).toBe('new');
    expect(await codeOf(files.remove('x', false))).toBe('DIRECTORY_NOT_EMPTY');
    expect(await files.remove('x', true)).toBe(true);
    expect(await files.remove('x', true)).toBe(false);
    expect(await files.remove('a/b', false)).toBe(true);
    expect(readdirSync(ws)).toEqual(['a']);
  });

  it('handles non-ASCII names in every operation', async () => {
    const names = ['é', '日本', '🔥 emoji', 'naïve café.txt'];
    await files.write(`${names[0]}/${names[1]}/${names[3]}`, chunks('unicode'));
    expect(await text(await files.read(`${names[0]}/${names[1]}/${names[3]}`))).toBe('unicode');
    expect((await files.list(names[0]!)).map((e) => e.name)).toEqual([names[1]]);
    expect(await files.stat(`${names[0]}/${names[1]}`)).toMatchObject({ name: '日本', type: 'dir' });
    await files.mkdir(`${names[2]}/ü`);
    expect(await files.rename(`${names[0]}/${names[1]}/${names[3]}`, `${names[2]}/ü/🦀.txt`)).toMatchObject({
      name: '🦀.txt',
      path: '/workspace/🔥 emoji/ü/🦀.txt',
    });
    expect(readFileSync(join(ws, '🔥 emoji', 'ü', '🦀.txt'), 'utf8')).toBe('unicode');
    expect(await files.remove(names[2]!, true)).toBe(true);
    expect(await files.remove(`${names[0]}/${names[1]}`, false)).toBe(true);
    expect(readdirSync(ws)).toEqual(['é']);
  });

  it('never follows a symlink: links are stat-ed, listed, renamed and removed as links; I/O through one is refused', async () => {
    symlinkSync(outside, join(ws, 'out'));
    symlinkSync(join(outside, 'secret.txt'), join(ws, 'secret-link'));
    writeFileSync(join(ws, 'inside.txt'), 'inside\n');
    symlinkSync('inside.txt', join(ws, 'inside-link'));
    mkdirSync(join(ws, 'dir'));
    symlinkSync('../dir', join(ws, 'dir', 'up'));
    const before = tree(outside);

    expect(await files.stat('out')).toMatchObject({ type: 'symlink', symlinkTarget: outside });
    expect((await files.list('.')).map((e) => `${e.name}:${e.type}`)).toEqual([
      'dir:dir',
      'inside-link:symlink',
      'inside.txt:file',
      'out:symlink',
      'secret-link:symlink',
    ]);
    for (const p of ['out/secret.txt', 'out/sub/secret.txt', 'secret-link', 'inside-link', 'dir/up/inside.txt'])
      expect(await codeOf(files.read(p)), p).toBe('SYMLINK_NOT_FOLLOWED');
    for (const p of ['out', 'out/sub', 'dir/up']) expect(await codeOf(files.list(p)), p).toBe('SYMLINK_NOT_FOLLOWED');
    expect(await codeOf(files.stat('out/secret.txt'))).toBe('SYMLINK_NOT_FOLLOWED');
    for (const p of ['out/new.txt', 'out/sub/new.txt', 'out/n/new.txt', 'secret-link', 'inside-link'])
      expect(await codeOf(files.write(p, chunks('x'))), p).toBe('SYMLINK_NOT_FOLLOWED');
    expect(await codeOf(files.mkdir('out/newdir'))).toBe('SYMLINK_NOT_FOLLOWED');
    expect(await codeOf(files.remove('out/secret.txt', false))).toBe('SYMLINK_NOT_FOLLOWED');
    expect(await codeOf(files.remove('out/sub', true))).toBe('SYMLINK_NOT_FOLLOWED');
    expect(await codeOf(files.rename('out/secret.txt', 'stolen.txt'))).toBe('SYMLINK_NOT_FOLLOWED');
    expect(await codeOf(files.rename('inside.txt', 'out/planted.txt'))).toBe('SYMLINK_NOT_FOLLOWED');
    expect(await files.rename('inside.txt', 'out/x/planted.txt').catch((e: unknown) => e)).toMatchObject({
      code: ErrorCode.ERROR_CODE_SYMLINK_NOT_FOLLOWED,
      data: { path: '/workspace/out/x/planted.txt' },
    });
    expect(readFileSync(join(ws, 'inside.txt'), 'utf8')).toBe('inside\n');

    // The links themselves can be moved and removed; their targets stay as they were.
    expect(await files.rename('out', 'dir/moved-link')).toMatchObject({ type: 'symlink', symlinkTarget: outside });
    expect(readlinkSync(join(ws, 'dir', 'moved-link'))).toBe(outside);
    expect(await files.remove('dir/moved-link', false)).toBe(true);
    expect(await files.remove('secret-link', true)).toBe(true);
    symlinkSync(outside, join(ws, 'dir', 'deep-link'));
    expect(await files.remove('dir', true)).toBe(true);
    expect(tree(outside)).toEqual(before);
    expect(readdirSync(ws).sort()).toEqual(['inside-link', 'inside.txt']);
  });

  it('refuses paths outside /workspace, special files and writes to the root itself', async () => {
    for (const p of ['../host/secret.txt', '/etc/passwd', 'a/../../x', 'a\0b']) expect(await codeOf(files.read(p)), p).toBe('PATH_OUTSIDE_WORKSPACE');
    expect(await codeOf(files.rename('x', '../y'))).toBe('PATH_OUTSIDE_WORKSPACE');
    expect(await codeOf(files.write('.', chunks('x')))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(files.remove('/workspace', true))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(files.rename('.', 'x'))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(files.read('.'))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(files.read('missing'))).toBe('FILE_NOT_FOUND');
    expect(await codeOf(files.write(`${'n'.repeat(256)}.txt`, chunks('x')))).toBe('NAME_TOO_LONG');
    mkdirSync(join(ws, 'd'));
    expect(await codeOf(files.read('d'))).toBe('IS_A_DIRECTORY');
    writeFileSync(join(ws, 'f'), 'x');
    expect(await codeOf(files.list('f'))).toBe('NOT_A_DIRECTORY');
    expect(await codeOf(files.write('f/x', chunks('x')))).toBe('NOT_A_DIRECTORY');
    // A FIFO would block an open without O_NONBLOCK; it is refused at once instead.
    execFileSync('mkfifo', [join(ws, 'fifo')]);
    expect(await codeOf(files.read('fifo'))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(files.write('fifo', chunks('x')))).not.toBe('resolved');
    expect(lstatSync(join(ws, 'fifo')).isFIFO()).toBe(true);
  });

  it('caps an upload at maxFileMB and maps a full filesystem (ENOSPC) to DiskQuotaExceeded, leaving no partial file', async () => {
    const big = 'x'.repeat(600 * 1024);
    expect(await codeOf(files.write('big.bin', chunks(big, big)))).toBe('DISK_QUOTA_EXCEEDED');
    expect(readdirSync(ws)).toEqual([]);
    // A real full filesystem: a 256 KB tmpfs as the workspace.
    const small = join(base, 'small');
    mkdirSync(small);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', small]);
    try {
      const tiny = new WorkspaceFiles(specFor(small, 100));
      const err = await tiny.write('full.bin', chunks(big)).catch((e: unknown) => e as { code: string; data: Record<string, unknown> });
      expect(err).toMatchObject({ code: ErrorCode.ERROR_CODE_DISK_QUOTA_EXCEEDED, data: { limitMB: 100, path: '/workspace/full.bin' } });
      expect(readdirSync(small)).toEqual([]);
    } finally {
      execFileSync('umount', [small]);
    }
  });

  it('closes every descriptor it opens, on success and on failure', async () => {
    symlinkSync(outside, join(ws, 'out'));
    await files.write('warm/up.txt', chunks('x'));
    const before = openFds();
    for (let i = 0; i < 20; i++) {
      await files.write(`d${i}/f.txt`, chunks('x'));
      await text(await files.read(`d${i}/f.txt`));
      await files.list(`d${i}`);
      await files.stat(`d${i}/f.txt`);
      await files.rename(`d${i}/f.txt`, `e${i}/g.txt`);
      await files.remove(`e${i}`, true);
      await files.remove(`d${i}`, false);
      await codeOf(files.read('out/secret.txt'));
      await codeOf(files.write('out/x', chunks('x')));
      await codeOf(files.list('missing/dir'));
      await codeOf(files.remove('out/sub', true));
    }
    // An abandoned read stream still gives its descriptor back once destroyed.
    const s = await files.read('warm/up.txt');
    s.destroy();
    await new Promise<void>((r) => s.once('close', () => r()));
    expect(openFds()).toBe(before);
  });

  it('stays inside the workspace while another process swaps a directory for a link to the host', async () => {
    mkdirSync(join(ws, 'd', 'sub'), { recursive: true });
    writeFileSync(join(ws, 'd', 'secret.txt'), 'inside\n');
    symlinkSync(outside, join(ws, 'd.lnk'));
    const before = tree(outside);
    const swapper = spawn(
      'python3',
      [
        '-c',
        `
import ctypes, time
libc = ctypes.CDLL(None, use_errno=True)
end = time.time() + 1.5
while time.time() < end:
    libc.renameat2(-100, b'${ws}/d', -100, b'${ws}/d.lnk', 2)
`,
      ],
      { stdio: 'ignore' },
    );
    const exited = new Promise((r) => swapper.once('exit', r));
    let running = true;
    void exited.then(() => (running = false));
    let inside = 0;
    let refused = 0;
    for (let i = 0; running; i++) {
      const results = await Promise.allSettled([
        files.read('d/secret.txt').then(text),
        files.read('d/sub/../secret.txt').then(text),
        files.write(`d/w${i}.txt`, chunks('w')),
        files.write(`d/sub/n${i}/w.txt`, chunks('w')),
        files.mkdir(`d/m${i}`),
        files.list('d'),
        files.rename('d/secret.txt', `taken${i}.txt`),
        files.remove('d/sub', true),
      ]);
      for (const r of results) {
        if (r.status === 'fulfilled') {
          expect(JSON.stringify(r.value)).not.toContain('host secret');
          if (r.value === 'inside\n') inside++;
        } else if ((r.reason as { code?: unknown }).code === ErrorCode.ERROR_CODE_SYMLINK_NOT_FOLLOWED) refused++;
        else expect(r.reason instanceof AgentError ? errorCodeToJSON(r.reason.code) : String(r.reason), String(r.reason)).toMatch(/^ERROR_CODE_(FILE_NOT_FOUND|NOT_A_DIRECTORY|DIRECTORY_NOT_EMPTY|FILE_EXISTS)$/);
      }
    }
    expect(tree(outside)).toEqual(before);
    expect(inside + refused).toBeGreaterThan(0);
  });
});
