/**
 * Path resolution beneath a pinned directory fd that never follows a symlink.
 *
 * Node has no openat(), so each step opens `/proc/self/fd/<parent>/<name>`
 * (see fsio.procPath) with O_PATH|O_NOFOLLOW|O_DIRECTORY: exactly one
 * component is looked up, inside the directory the parent fd pins. A
 * sandboxed process that swaps a directory for a symlink at any moment can
 * make a step fail, never make it leave the tree: a link is not a directory
 * to O_DIRECTORY|O_NOFOLLOW, and no step resolves more than one name.
 *
 * Every fd returned here is the caller's to close.
 */
import { promises as fsp } from 'node:fs';
import { O_DIRECTORY, O_NOFOLLOW, O_PATH, closeFd, lstatPath, openFd, procPath } from './fsio.js';

/** An errno-shaped error, as the fs calls throw them, for conditions we detect ourselves. */
export function errnoError(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${message}`), { code });
}

/** Refuses anything that is not one plain path component (callers pass normalised paths). */
export function assertName(name: string): void {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0'))
    throw errnoError('EINVAL', `not a single path component: ${JSON.stringify(name)}`);
}

/**
 * Opens the root of a tree as an O_PATH directory fd. The path itself is trusted (it is
 * the host's own); only its last component is checked not to be a link.
 */
export function openRoot(path: string): Promise<number> {
  return openFd(path, O_PATH | O_DIRECTORY | O_NOFOLLOW);
}

/**
 * Opens directory `name` inside `dirFd` (O_PATH, no link followed). A symlink there fails
 * with ELOOP, so callers can tell "a link" from "not a directory" (ENOTDIR).
 */
export async function openDirAt(dirFd: number, name: string): Promise<number> {
  assertName(name);
  const path = procPath(dirFd, name);
  try {
    return await openFd(path, O_PATH | O_NOFOLLOW | O_DIRECTORY);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOTDIR') throw err;
    // Only to word the error: the entry may change again, but nothing is opened through it.
    const st = await lstatPath(path).catch(() => undefined);
    if (st?.isSymbolicLink()) throw errnoError('ELOOP', `${name} is a symbolic link`);
    throw err;
  }
}

/** A second fd of the directory `dirFd` pins (a dup: re-opening the fd's own proc link). */
export function reopenDir(dirFd: number): Promise<number> {
  return openFd(procPath(dirFd), O_PATH | O_DIRECTORY);
}

/**
 * Walks `names` down from `rootFd` and returns an fd of the last directory (of the root
 * itself for no names). With `onCreate`, missing directories are made (mode 0755) and
 * `onCreate` runs on each new one (to chown it) before the walk goes on; a directory
 * that appears concurrently is simply used.
 */
export async function walkDirs(rootFd: number, names: readonly string[], onCreate?: (dirFd: number) => Promise<void>): Promise<number> {
  let fd = await reopenDir(rootFd);
  try {
    for (const name of names) {
      let next: number;
      try {
        next = await openDirAt(fd, name);
      } catch (err) {
        if (!onCreate || (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        next = await mkdirAt(fd, name, onCreate);
      }
      await closeFd(fd);
      fd = next;
    }
    return fd;
  } catch (err) {
    await closeFd(fd);
    throw err;
  }
}

/** Makes directory `name` in `dirFd` (0755), runs `onCreate` on it, and returns its fd. EEXIST when it is there already as a non-directory. */
async function mkdirAt(dirFd: number, name: string, onCreate: (dirFd: number) => Promise<void>): Promise<number> {
  let made = true;
  try {
    await fsp.mkdir(procPath(dirFd, name), 0o755);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    made = false;
  }
  const fd = await openDirAt(dirFd, name);
  if (!made) return fd;
  try {
    await onCreate(fd);
    return fd;
  } catch (err) {
    await closeFd(fd);
    throw err;
  }
}

/** Runs `fn` with an fd that is closed afterwards, whatever happens. */
export async function withFd<T>(fd: Promise<number>, fn: (fd: number) => Promise<T>): Promise<T> {
  const n = await fd;
  try {
    return await fn(n);
  } finally {
    await closeFd(n);
  }
}
