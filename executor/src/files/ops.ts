import { constants, createReadStream, type ReadStream } from 'node:fs';
import { chown, lstat, mkdir, open, readdir, readlink, rename, rm, rmdir, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import type { FileInfo } from '@kiln/proto/executor';
import type { SandboxSpec } from '../sandbox/spec.js';
import { DiskQuotaExceededError, fsError, InvalidArgumentError } from '../session/errors.js';
import { resolvePath, WORKSPACE } from './paths.js';

type Stats = Awaited<ReturnType<typeof lstat>>;

function typeOf(s: Stats): string {
  if (s.isFile()) return 'file';
  if (s.isDirectory()) return 'dir';
  if (s.isSymbolicLink()) return 'symlink';
  return 'other';
}

async function infoOf(host: string, inside: string): Promise<FileInfo> {
  const s = await lstat(host);
  return {
    path: inside,
    name: inside === WORKSPACE ? 'workspace' : posix.basename(inside),
    type: typeOf(s),
    size: Number(s.size),
    mode: Number(s.mode) & 0o7777,
    modifiedAtMs: Math.floor(Number(s.mtimeMs)),
    symlinkTarget: s.isSymbolicLink() ? await readlink(host) : '',
  };
}

/** Files of one sandbox's /workspace, operated on from the host as the sandbox's uid would. */
export class WorkspaceFiles {
  constructor(private readonly spec: SandboxSpec) {}

  private get owned(): boolean {
    return process.getuid?.() === 0;
  }

  async stat(path: string): Promise<FileInfo> {
    const p = await resolvePath(this.spec, path);
    try {
      return await infoOf(p.host, p.inside);
    } catch (err) {
      throw fsError(err, p.inside);
    }
  }

  async list(path: string): Promise<FileInfo[]> {
    const p = await resolvePath(this.spec, path);
    try {
      const names = await readdir(p.host);
      names.sort();
      return await Promise.all(names.map((n) => infoOf(join(p.host, n), posix.join(p.inside, n))));
    } catch (err) {
      throw fsError(err, p.inside);
    }
  }

  /** A stream of the file's bytes; refuses directories. */
  async read(path: string): Promise<ReadStream> {
    const p = await resolvePath(this.spec, path);
    let fh: FileHandle;
    try {
      fh = await open(p.host, constants.O_RDONLY | constants.O_NOFOLLOW);
      if ((await fh.stat()).isDirectory()) {
        await fh.close();
        throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
      }
    } catch (err) {
      throw fsError(err, p.inside);
    }
    return createReadStream('', { fd: fh.fd, highWaterMark: 256 * 1024, autoClose: true }).on('close', () => void fh.close().catch(() => undefined));
  }

  /**
   * Writes a file from chunks (creating parent directories), owned by the sandbox's uid. The
   * workspace quota (diskMB) is checked against the bytes already there plus those written.
   */
  async write(path: string, chunks: AsyncIterable<Uint8Array>, mode = 0o644): Promise<FileInfo> {
    const p = await resolvePath(this.spec, path);
    if (p.inside === WORKSPACE) throw new InvalidArgumentError('cannot write to /workspace itself; name a file inside it');
    const limit = this.spec.maxFileMB * 1024 * 1024;
    let used = await workspaceBytes(this.spec.workspaceDir);
    await this.mkdirHost(dirname(p.host), dirname(p.inside));
    let fh: FileHandle | undefined;
    try {
      fh = await open(p.host, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, mode & 0o777);
      if (this.owned) await fh.chown(this.spec.hostUid, this.spec.hostGid);
      for await (const chunk of chunks) {
        used += chunk.length;
        if (used > limit) throw new DiskQuotaExceededError(this.spec.maxFileMB);
        await fh.write(chunk);
      }
    } catch (err) {
      await fh?.close();
      fh = undefined;
      if (err instanceof DiskQuotaExceededError) await rm(p.host, { force: true });
      throw fsError(err, p.inside);
    } finally {
      await fh?.close();
    }
    return infoOf(p.host, p.inside);
  }

  /** mkdir -p; every directory it creates belongs to the sandbox's uid. */
  async mkdir(path: string): Promise<FileInfo> {
    const p = await resolvePath(this.spec, path);
    await this.mkdirHost(p.host, p.inside);
    return infoOf(p.host, p.inside);
  }

  async remove(path: string, recursive: boolean): Promise<boolean> {
    const p = await resolvePath(this.spec, path, { followLast: false });
    if (p.inside === WORKSPACE) throw new InvalidArgumentError('cannot remove /workspace itself');
    try {
      const s = await lstat(p.host);
      if (s.isDirectory() && !recursive) await rmdir(p.host);
      else await rm(p.host, { recursive, force: false });
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw fsError(err, p.inside);
    }
  }

  async rename(from: string, to: string): Promise<FileInfo> {
    const a = await resolvePath(this.spec, from, { followLast: false });
    const b = await resolvePath(this.spec, to, { followLast: false });
    if (a.inside === WORKSPACE || b.inside === WORKSPACE) throw new InvalidArgumentError('cannot rename /workspace itself');
    await this.mkdirHost(dirname(b.host), dirname(b.inside));
    try {
      await rename(a.host, b.host);
    } catch (err) {
      throw fsError(err, a.inside);
    }
    return infoOf(b.host, b.inside);
  }

  private async mkdirHost(host: string, inside: string): Promise<void> {
    let first: string | undefined;
    try {
      first = await mkdir(host, { recursive: true, mode: 0o755 });
    } catch (err) {
      throw fsError(err, inside);
    }
    if (!first || !this.owned) return;
    // mkdir returns the first directory it made; chown it and everything below it on the way.
    for (let dir = host; dir.length >= first.length; dir = dirname(dir)) {
      await chown(dir, this.spec.hostUid, this.spec.hostGid);
      if (dir === first) break;
    }
  }
}

/** Bytes used under a directory (apparent sizes, symlinks not followed). */
export async function workspaceBytes(dir: string): Promise<number> {
  let total = 0;
  const stack = [dir];
  while (stack.length) {
    const d = stack.pop() as string;
    let entries;
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      continue; // removed meanwhile by a sandbox process
    }
    for (const e of entries) {
      const full = join(d, e.name);
      if (e.isDirectory()) stack.push(full);
      else if (e.isFile()) total += await stat(full).then((s) => s.size, () => 0);
    }
  }
  return total;
}
