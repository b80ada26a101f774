/**
 * The safe view of one export's directory tree.
 *
 * Every inode the server hands out a handle for is recorded as (parent, name)
 * in a per-export registry keyed by "dev:ino". Resolving a handle walks that
 * chain down from the export root one component at a time, opening each with
 * O_PATH|O_NOFOLLOW relative to its parent's fd (see fs/fsio.ts procPath), and
 * checks that the inode found is the one the handle names. So:
 *  - only inodes reached from this export's root are addressable;
 *  - symlinks are never followed on the server, wherever they point;
 *  - sandboxed code racing to swap a directory for a symlink gains nothing:
 *    no step resolves more than one component, and none follows a link.
 * Resolved fds are kept in small leased LRU caches (fdcache.ts); idle ones
 * close after a few seconds, so an idle export holds no descriptors.
 */
import { createHash } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { Nfs3Status, NfsError } from './errors.js';
import { FdCache, type FdLease } from './fdcache.js';
import { O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK, O_PATH, O_RDONLY, O_RDWR, closeFd, fstatFd, inodeKey, openFd, procPath } from '../fs/fsio.js';
import type { NfsExport } from './types.js';

/** Registry entry: where an inode was last seen. The root has no parent. */
interface NodeRef {
  parent: string | undefined;
  name: string;
}

/** Longest file name accepted (NAME_MAX on Linux). */
export const NAME_MAX = 255;

/** Rejects names that are not a single path component. "." and ".." are handled by callers. */
export function checkName(name: string): void {
  if (name.length === 0 || name.includes('/') || name.includes('\0')) throw new NfsError(Nfs3Status.ACCES, 'bad name');
  if (Buffer.byteLength(name) > NAME_MAX) throw new NfsError(Nfs3Status.NAMETOOLONG);
}

const stale = (why: string): NfsError => new NfsError(Nfs3Status.STALE, why);

export class ExportFs {
  private readonly nodes = new Map<string, NodeRef>();
  /** O_PATH fds by inode key. */
  readonly paths = new FdCache(128);
  /** I/O fds by inode key; info = 1 when opened read-write. */
  readonly data = new FdCache(16);
  private readonly fsids = new Map<bigint, bigint>();
  private disposed = false;

  private constructor(
    /** Latest export record from the resolver (readOnly/allow/uid may change). */
    public exp: NfsExport,
    readonly rootKey: string,
  ) {
    this.nodes.set(rootKey, { parent: undefined, name: '' });
  }

  /** Opens an export's root. Fails (ENOENT, ENOTDIR) if the root is gone. */
  static async open(exp: NfsExport): Promise<ExportFs> {
    const fd = await openFd(exp.root, O_PATH | O_DIRECTORY);
    try {
      const st = await fstatFd(fd);
      const efs = new ExportFs(exp, inodeKey(st));
      efs.paths.put(efs.rootKey, fd).release();
      return efs;
    } catch (e) {
      await closeFd(fd);
      throw e;
    }
  }

  /** fsid reported for files on host device `dev`: a hash of export id and dev. */
  fsid(dev: bigint): bigint {
    let v = this.fsids.get(dev);
    if (v === undefined) {
      v = createHash('sha256').update(`${this.exp.id}\0${dev}`).digest().readBigUInt64BE(0);
      this.fsids.set(dev, v);
    }
    return v;
  }

  /** Whether `key` names an inode this export has handed out. */
  has(key: string): boolean {
    return this.nodes.has(key);
  }

  /** Records that `st` was found as `name` in directory `parent`. Returns its key. */
  register(parent: string, name: string, st: { dev: bigint; ino: bigint }): string {
    const key = inodeKey(st);
    if (key !== this.rootKey) this.nodes.set(key, { parent, name });
    return key;
  }

  /** The registered parent of `key` (the root is its own parent). */
  parentOf(key: string): string {
    if (key === this.rootKey) return key;
    const n = this.nodes.get(key);
    if (!n?.parent) throw stale('unknown node');
    return n.parent;
  }

  /** Where inode `key` was last seen: (parent directory key, name). */
  locate(key: string): { parent: string; name: string } {
    const n = this.nodes.get(key);
    if (!n?.parent) throw stale('unknown node');
    return { parent: n.parent, name: n.name };
  }

  /** Forgets an inode that was removed or replaced, and closes its cached fds. */
  forget(key: string): void {
    if (key === this.rootKey) return;
    this.nodes.delete(key);
    this.paths.delete(key);
    this.data.delete(key);
  }

  /** After a rename: the inode now lives at (parent, name). Descendants follow automatically. */
  moved(key: string, parent: string, name: string): void {
    if (key !== this.rootKey) this.nodes.set(key, { parent, name });
  }

  /** Borrows an O_PATH fd pinned to inode `key`, re-walking from the root if it is not cached. */
  async pathFd(key: string): Promise<FdLease> {
    if (this.disposed) throw stale('export closed');
    const cached = this.paths.get(key);
    if (cached) return cached;
    let fd: number;
    if (key === this.rootKey) {
      fd = await openFd(this.exp.root, O_PATH | O_DIRECTORY);
    } else {
      const node = this.nodes.get(key);
      if (!node?.parent) throw stale('unknown node');
      const parent = await this.pathFd(node.parent);
      try {
        fd = await openFd(procPath(parent.fd, node.name), O_PATH | O_NOFOLLOW);
      } catch (e) {
        throw stale(`cannot reopen: ${(e as Error).message}`);
      } finally {
        parent.release();
      }
    }
    const st = await fstatFd(fd).catch(async (e: unknown) => {
      await closeFd(fd);
      throw e;
    });
    if (inodeKey(st) !== key) {
      await closeFd(fd);
      throw stale('inode changed');
    }
    return this.paths.put(key, fd);
  }

  /** Current attributes of inode `key`; STALE once it has been deleted. */
  async stat(key: string): Promise<BigIntStats> {
    const lease = await this.pathFd(key);
    try {
      const st = await fstatFd(lease.fd);
      if (st.nlink === 0n) {
        this.forget(key);
        throw stale('deleted');
      }
      return st;
    } finally {
      lease.release();
    }
  }

  /** Attributes, or undefined on any failure (for optional post-op attributes). */
  async tryStat(key: string): Promise<BigIntStats | undefined> {
    return this.stat(key).catch(() => undefined);
  }

  /**
   * Looks `name` up in directory `dir`, registers the result and returns its
   * key and attributes. "." and ".." never leave the export: ".." of the root
   * is the root.
   */
  async lookup(dir: string, name: string): Promise<{ key: string; st: BigIntStats }> {
    if (name === '.' || name === '..') {
      const key = name === '.' ? dir : this.parentOf(dir);
      const st = await this.stat(key);
      if (!st.isDirectory()) throw new NfsError(Nfs3Status.NOTDIR);
      return { key, st };
    }
    checkName(name);
    const parent = await this.pathFd(dir);
    let fd: number;
    try {
      fd = await openFd(procPath(parent.fd, name), O_PATH | O_NOFOLLOW);
    } finally {
      parent.release();
    }
    let st: BigIntStats;
    try {
      st = await fstatFd(fd);
    } catch (e) {
      await closeFd(fd);
      throw e;
    }
    const key = this.register(dir, name, st);
    this.paths.put(key, fd).release();
    return { key, st };
  }

  /** Runs `fn` with the proc path of directory `dir`'s pinned fd (for name-relative operations). */
  async inDir<T>(dir: string, fn: (dirPath: string) => Promise<T>): Promise<T> {
    const lease = await this.pathFd(dir);
    try {
      return await fn(procPath(lease.fd));
    } finally {
      lease.release();
    }
  }

  /**
   * Borrows an I/O fd for regular file `key`. The type is checked on the
   * pinned O_PATH fd before opening, so a FIFO or device can never block us.
   */
  async dataFd(key: string, write: boolean): Promise<FdLease> {
    const cached = this.data.get(key);
    if (cached && (!write || cached.info === 1)) return cached;
    cached?.release();
    const p = await this.pathFd(key);
    let fd: number;
    let rw = !this.exp.readOnly;
    try {
      const st = await fstatFd(p.fd);
      if (st.isDirectory()) throw new NfsError(Nfs3Status.ISDIR);
      if (!st.isFile()) throw new NfsError(Nfs3Status.INVAL, 'not a regular file');
      if (st.nlink === 0n) throw stale('deleted');
      try {
        fd = await openFd(procPath(p.fd), (rw ? O_RDWR : O_RDONLY) | O_NONBLOCK);
      } catch (e) {
        // Not root and the file is read-only to us: reads can still proceed.
        if (write || !rw || (e as NodeJS.ErrnoException).code !== 'EACCES') throw e;
        rw = false;
        fd = await openFd(procPath(p.fd), O_RDONLY | O_NONBLOCK);
      }
    } finally {
      p.release();
    }
    return this.data.put(key, fd, rw ? 1 : 0);
  }

  /** Closes every cached fd; outstanding handles become STALE. */
  dispose(): void {
    this.disposed = true;
    this.paths.clear();
    this.data.clear();
    this.nodes.clear();
  }
}
