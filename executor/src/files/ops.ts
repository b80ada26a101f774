import { createReadStream, promises as fsp, read as readFd, type ReadStream, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import type { FileInfo } from '@kiln/proto/executor/files';
import { CHUNK_HEADER_ROOM, sealChunk } from '@kiln/proto/file-wire';
import { openRoot, walkDirs, withFd } from '../fs/beneath.js';
import { O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_RDONLY, O_WRONLY, closeFd, fstatFd, isRoot, openFd, procPath } from '../fs/fsio.js';
import { removeTreeAt, TreeTooDeepError } from '../fs/remove-tree.js';
import type { SandboxSpec } from '../sandbox/spec.js';
import { DiskQuotaExceededError, fsError, InvalidArgumentError } from '../errors.js';
import { components, insidePath, WORKSPACE } from './paths.js';

/** Bytes per read of a file being sent. */
const READ_CHUNK_BYTES = 256 * 1024;

/** pread(2) of up to `length` bytes into `buf` at `at`; 0 at the end of the file. */
function preadInto(fd: number, buf: Buffer, at: number, length: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => readFd(fd, buf, at, length, pos, (err, n) => (err ? reject(err) : resolve(n))));
}

function typeOf(s: Stats): string {
  if (s.isFile()) return 'file';
  if (s.isDirectory()) return 'dir';
  if (s.isSymbolicLink()) return 'symlink';
  return 'other';
}

function infoFrom(s: Stats, inside: string, symlinkTarget: string): FileInfo {
  return {
    path: inside,
    name: inside === WORKSPACE ? 'workspace' : inside.slice(inside.lastIndexOf('/') + 1),
    type: typeOf(s),
    size: s.size,
    mode: s.mode & 0o7777,
    modifiedAtMs: Math.floor(s.mtimeMs),
    symlinkTarget,
  };
}

/** Info on entry `name` of directory `dirFd`, as the entry itself (a link is not followed). */
async function infoAt(dirFd: number, name: string, inside: string): Promise<FileInfo> {
  const path = procPath(dirFd, name);
  const s = await fsp.lstat(path);
  // readlink reads the link's own text (it does not follow it). The entry may have been
  // replaced since the lstat; then there is no text to show.
  const target = s.isSymbolicLink() ? await fsp.readlink(path).catch(() => '') : '';
  return infoFrom(s, inside, target);
}

/** Info on the directory an fd pins (stat follows only the fd's own proc link). */
async function infoOfDir(dirFd: number, inside: string): Promise<FileInfo> {
  return infoFrom(await fsp.stat(procPath(dirFd)), inside, '');
}

const isQuotaError = (err: unknown): boolean => ['ENOSPC', 'EDQUOT', 'EFBIG'].includes((err as NodeJS.ErrnoException)?.code ?? '');

/** A path split for an operation on its last entry: where it is and what it is called. */
interface Target {
  /** e.g. /workspace/src/a.py */
  inside: string;
  /** Directory names from /workspace down to the entry's parent. */
  parents: string[];
  /** The entry's own name. */
  name: string;
}

function target(path: string, refuseRoot: string): Target {
  const inside = insidePath(path);
  const names = components(inside);
  const name = names.pop();
  if (name === undefined) throw new InvalidArgumentError(refuseRoot, { path: inside });
  return { inside, parents: names, name };
}

/**
 * Files of one sandbox's /workspace, operated on from the host as the sandbox's uid would.
 *
 * Sandboxed code changes the workspace while we work in it, so no path string is ever
 * resolved twice: each operation pins the workspace root as an O_PATH fd and walks down
 * one component at a time without following a symlink (fs/beneath.ts), then acts on the
 * last name inside its parent's fd with calls that do not follow a final link either
 * (lstat, open O_NOFOLLOW, mkdir, unlink, rmdir, rename). Links in the workspace can be
 * listed, stat'ed, removed and renamed as links; reading or writing through one is refused
 * (SymlinkNotFollowed). Every fd is closed before the call returns (a read's file fd is
 * closed by its stream).
 */
export class WorkspaceFiles {
  constructor(private readonly spec: SandboxSpec) {}

  /** Runs `fn` with an fd of the directory `names` lead to; with `create`, missing ones are made. */
  private async inDir<T>(names: string[], create: boolean, fn: (dirFd: number) => Promise<T>): Promise<T> {
    return withFd(openRoot(this.spec.workspaceDir), (root) => withFd(walkDirs(root, names, create ? (fd) => this.own(procPath(fd)) : undefined), fn));
  }

  /**
   * Gives a directory we created to the sandbox's uid (when we may chown at all). `path` is
   * the proc link of its O_PATH fd, so chown follows only that link, to that very directory.
   */
  private async own(path: string): Promise<void> {
    if (isRoot()) await fsp.chown(path, this.spec.hostUid, this.spec.hostGid);
  }

  async stat(path: string): Promise<FileInfo> {
    const inside = insidePath(path);
    const names = components(inside);
    const name = names.pop();
    try {
      return await this.inDir(names, false, (dirFd) => (name === undefined ? infoOfDir(dirFd, inside) : infoAt(dirFd, name, inside)));
    } catch (err) {
      throw fsError(err, inside);
    }
  }

  async list(path: string): Promise<FileInfo[]> {
    const inside = insidePath(path);
    try {
      return await this.inDir(components(inside), false, async (dirFd) => {
        const names = (await fsp.readdir(procPath(dirFd))).sort();
        const infos = await Promise.all(
          names.map((n) =>
            infoAt(dirFd, n, `${inside}/${n}`).catch((err: unknown) => {
              // Removed by the sandbox since readdir: it is simply not listed.
              if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
              throw err;
            }),
          ),
        );
        return infos.filter((i): i is FileInfo => i !== undefined);
      });
    } catch (err) {
      throw fsError(err, inside);
    }
  }

  /**
   * A stream of a regular file's bytes; refuses directories, links and special files. With
   * `length` > 0 it sends at most that many bytes from `offset` (a Range request's slice).
   */
  async read(path: string, offset = 0, length = 0): Promise<ReadStream> {
    const fd = await this.openForRead(path);
    // The stream owns the fd from here on and closes it when it ends or is destroyed.
    return createReadStream('', { fd, highWaterMark: READ_CHUNK_BYTES, autoClose: true, start: offset, ...(length > 0 ? { end: offset + length - 1 } : {}) });
  }

  /**
   * As read, for the Files.Read stream: each chunk is read into a buffer that keeps room for
   * its FileChunk header before it (file-wire.ts sealChunk), so the message is sent as it was
   * read, without the copy encoding would make. The fd is open (and the path checked) before
   * this returns; it is closed when the chunks end or their consumer stops.
   */
  async readChunks(path: string, offset = 0, length = 0): Promise<AsyncGenerator<Buffer>> {
    const fd = await this.openForRead(path);
    return (async function* chunks(): AsyncGenerator<Buffer> {
      try {
        let pos = offset;
        const end = length > 0 ? offset + length : Infinity;
        while (pos < end) {
          const want = Math.min(READ_CHUNK_BYTES, end - pos);
          const buf = Buffer.allocUnsafe(CHUNK_HEADER_ROOM + want);
          const n = await preadInto(fd, buf, CHUNK_HEADER_ROOM, want, pos);
          if (n === 0) return;
          pos += n;
          yield sealChunk(buf, n);
        }
      } finally {
        await closeFd(fd);
      }
    })();
  }

  /** An fd of a regular file for reading; refuses directories, links and special files. */
  private async openForRead(path: string): Promise<number> {
    const t = target(path, 'cannot read /workspace itself; it is a directory (use list)');
    try {
      return await this.inDir(t.parents, false, async (dirFd) => {
        // A raw fd, not a FileHandle: the reader owns it, and a FileHandle would close it
        // again when collected. O_NONBLOCK: a FIFO planted by the sandbox must not hang us.
        const f = await openFd(procPath(dirFd, t.name), O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
        try {
          const s = await fstatFd(f);
          if (s.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
          if (!s.isFile()) throw new InvalidArgumentError(`${t.inside} is not a regular file`, { path: t.inside });
          return f;
        } catch (err) {
          await closeFd(f);
          throw err;
        }
      });
    } catch (err) {
      throw fsError(err, t.inside);
    }
  }

  /**
   * Writes a regular file from chunks (creating parent directories), owned by the sandbox's
   * uid. One upload may be at most maxFileMB (the same RLIMIT_FSIZE sandbox processes get);
   * a full workspace (ENOSPC, EDQUOT) is DiskQuotaExceeded too.
   *
   * The bytes go to a new file of a hidden name beside the target (O_EXCL, so never an entry the
   * sandbox planted), which is renamed over the target once complete: a failed or cut upload
   * leaves the old file as it was and no partial file, and readers never see half a file. The
   * rename happens inside the parent's pinned fd, and rename(2) replaces a link at the target
   * as a link, so swapping the target or a parent for a symlink mid-upload sends nothing out.
   */
  async write(path: string, chunks: AsyncIterable<Uint8Array>, mode = 0o644): Promise<FileInfo> {
    const t = target(path, 'cannot write to /workspace itself; name a file inside it');
    const limit = this.spec.maxFileMB * 1024 * 1024;
    try {
      return await this.inDir(t.parents, true, async (dirFd) => {
        const existing = await fsp.lstat(procPath(dirFd, t.name)).catch((err: unknown) => {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
          throw err;
        });
        // As an O_NOFOLLOW open would: writing through a link is refused. A link swapped in
        // later is replaced by rename(2) as a link, never followed.
        if (existing?.isSymbolicLink()) throw Object.assign(new Error('is a symlink'), { code: 'ELOOP' });
        if (existing && !existing.isFile()) throw new InvalidArgumentError(`${t.inside} exists and is not a regular file`, { path: t.inside });
        const temp = `.kiln-upload-${randomBytes(8).toString('hex')}`;
        const fh = await fsp.open(procPath(dirFd, temp), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK, mode & 0o777);
        let renamed = false;
        try {
          if (isRoot()) await fh.chown(this.spec.hostUid, this.spec.hostGid);
          // An overwritten file keeps its permissions, as it did when it was truncated in place.
          await fh.chmod((existing?.isFile() ? existing.mode : mode) & 0o777);
          let written = 0;
          for await (const chunk of chunks) {
            written += chunk.length;
            if (written > limit) throw new DiskQuotaExceededError(this.spec.maxFileMB, t.inside);
            await writeAll(fh, chunk);
          }
          const info = infoFrom(await fh.stat(), t.inside, '');
          if (!(await isSame(dirFd, temp, fh))) throw new InvalidArgumentError(`${t.inside} was moved away by the sandbox while it was uploaded`, { path: t.inside });
          await fsp.rename(procPath(dirFd, temp), procPath(dirFd, t.name));
          renamed = true;
          return info;
        } finally {
          if (!renamed) await unlinkIfSame(dirFd, temp, fh);
          await fh.close();
        }
      });
    } catch (err) {
      if (isQuotaError(err)) throw new DiskQuotaExceededError(this.spec.maxFileMB, t.inside);
      throw fsError(err, t.inside);
    }
  }

  /** mkdir -p; every directory it creates belongs to the sandbox's uid. */
  async mkdir(path: string): Promise<FileInfo> {
    const inside = insidePath(path);
    try {
      return await this.inDir(components(inside), true, (dirFd) => infoOfDir(dirFd, inside));
    } catch (err) {
      if (isQuotaError(err)) throw new DiskQuotaExceededError(this.spec.maxFileMB, inside);
      throw fsError(err, inside);
    }
  }

  /** Removes a file, link or empty directory, or with `recursive` a whole tree (by fds). */
  async remove(path: string, recursive: boolean): Promise<boolean> {
    const t = target(path, 'cannot remove /workspace itself');
    try {
      await this.inDir(t.parents, false, async (dirFd) => {
        const entry = procPath(dirFd, t.name);
        if (recursive) return removeTreeAt(dirFd, t.name);
        const s = await fsp.lstat(entry);
        await (s.isDirectory() ? fsp.rmdir(entry) : fsp.unlink(entry));
      });
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      if (err instanceof TreeTooDeepError)
        throw new InvalidArgumentError(`${t.inside} is nested deeper than ${err.maxDepth} levels; remove its deepest part with a process first`, {
          path: t.inside,
        });
      throw fsError(err, t.inside);
    }
  }

  /** Moves an entry (a link moves as a link), creating the destination's parents. */
  async rename(from: string, to: string): Promise<FileInfo> {
    const a = target(from, 'cannot rename /workspace itself');
    const b = target(to, 'cannot rename /workspace itself');
    try {
      return await this.inDir(a.parents, false, (fromDir) =>
        withFd(openRoot(this.spec.workspaceDir), (root) =>
          withFd(
            walkDirs(root, b.parents, (fd) => this.own(procPath(fd))).catch((err: unknown) => {
              throw fsError(err, b.inside);
            }),
            async (toDir) => {
              await fsp.rename(procPath(fromDir, a.name), procPath(toDir, b.name)).catch((err: unknown) => {
                // These name the destination; anything else (ENOENT above all) the source.
                const atDestination = ['EEXIST', 'ENOTEMPTY', 'EISDIR'].includes((err as NodeJS.ErrnoException).code ?? '');
                throw fsError(err, atDestination ? b.inside : a.inside);
              });
              return infoAt(toDir, b.name, b.inside);
            },
          ),
        ),
      );
    } catch (err) {
      throw fsError(err, a.inside);
    }
  }
}

/** Writes a whole chunk: a write may be short (a nearly full disk), and the next one says why. */
async function writeAll(fh: FileHandle, chunk: Uint8Array): Promise<void> {
  for (let off = 0; off < chunk.length;) {
    const { bytesWritten } = await fh.write(chunk, off, chunk.length - off);
    if (bytesWritten <= 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
    off += bytesWritten;
  }
}

/** Whether entry `name` of `dirFd` is (still) the file `fh` has open, not a link or another file. */
async function isSame(dirFd: number, name: string, fh: FileHandle): Promise<boolean> {
  const [mine, now] = await Promise.all([fh.stat(), fsp.lstat(procPath(dirFd, name))]);
  return mine.ino === now.ino && mine.dev === now.dev;
}

/**
 * Unlinks `name` in `dirFd` if it is still the file `fh` has open: a failed upload takes
 * back only the file it made, never an entry the sandbox put there in the meantime.
 */
async function unlinkIfSame(dirFd: number, name: string, fh: FileHandle): Promise<void> {
  try {
    if (await isSame(dirFd, name, fh)) await fsp.unlink(procPath(dirFd, name));
  } catch {
    // Gone or replaced already: nothing of ours to take back. The write's own error is thrown.
  }
}
