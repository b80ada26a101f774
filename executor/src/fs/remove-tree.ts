/**
 * Recursive removal by directory fds (`rm -r` that cannot be redirected). Each directory is
 * entered through openDirAt (O_NOFOLLOW|O_DIRECTORY) and its entries are removed by name
 * inside that pinned fd with unlink/rmdir, which never follow a final link. A symlink is
 * removed as a link; a directory swapped for a link midway is unlinked, never entered.
 */
import { promises as fsp } from 'node:fs';
import { assertName, openDirAt } from './beneath.js';
import { closeFd, lstatPath, procPath } from './fsio.js';

/** Deepest nesting removed: the walk holds one fd per level. */
export const MAX_REMOVE_DEPTH = 1000;

/** A tree nested deeper than MAX_REMOVE_DEPTH; nothing past that depth was touched. */
export class TreeTooDeepError extends Error {
  constructor(readonly maxDepth: number) {
    super(`the directory tree is nested deeper than ${maxDepth} levels`);
    this.name = 'TreeTooDeepError';
  }
}

const codeOf = (err: unknown): string | undefined => (err as NodeJS.ErrnoException)?.code;

/**
 * Removes entry `name` of directory `dirFd`, with everything below it when it is a
 * directory. Entries that vanish meanwhile (the sandbox runs concurrently) are skipped;
 * ENOENT for `name` itself is thrown, so callers can report "did not exist".
 */
export async function removeTreeAt(dirFd: number, name: string, depth = 0): Promise<void> {
  assertName(name);
  const path = procPath(dirFd, name);
  const st = await lstatPath(path);
  if (!st.isDirectory()) {
    try {
      await fsp.unlink(path);
      return;
    } catch (err) {
      // It became a directory since the lstat: remove it as one.
      if (codeOf(err) !== 'EISDIR') throw err;
    }
  }
  if (depth >= MAX_REMOVE_DEPTH) throw new TreeTooDeepError(MAX_REMOVE_DEPTH);
  let fd: number;
  try {
    fd = await openDirAt(dirFd, name);
  } catch (err) {
    // Swapped for a link (or a file) after the lstat: remove that entry itself instead.
    if (codeOf(err) !== 'ELOOP' && codeOf(err) !== 'ENOTDIR') throw err;
    await fsp.unlink(path);
    return;
  }
  try {
    for (const entry of await fsp.readdir(procPath(fd))) {
      try {
        await removeTreeAt(fd, entry, depth + 1);
      } catch (err) {
        if (codeOf(err) !== 'ENOENT') throw err;
      }
    }
  } finally {
    await closeFd(fd);
  }
  await fsp.rmdir(path);
}
