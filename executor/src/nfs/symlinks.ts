/**
 * Symlink policy. The server itself never follows symlinks (every lookup is
 * O_NOFOLLOW), but links created over NFS are also constrained so that they
 * can never resolve outside the export, for whoever follows them later.
 */
import { Nfs3Status, NfsError } from './errors.js';
import { O_DIRECTORY, O_PATH, closeFd, fstatFd, inodeKey, openFd, procPath } from '../fs/fsio.js';
import type { ExportFs } from './vfs.js';

/** Longest accepted link target (PATH_MAX). */
export const TARGET_MAX = 4096;

/**
 * Whether a link target, placed in a directory `depth` components below the
 * export root, stays inside the export. Only the normal form "../../a/b" is
 * accepted: ".." may appear only as leading components. Anything like
 * "a/../.." is refused because the kernel resolves "a" first, and if "a" is
 * itself a symlink the lexical reading of ".." would be wrong.
 */
export function targetStaysInside(depth: number, target: string): boolean {
  if (target.length === 0 || target.length > TARGET_MAX || target.includes('\0')) return false;
  if (target.startsWith('/')) return false;
  let ups = 0;
  let seenName = false;
  for (const part of target.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (seenName) return false;
      ups++;
    } else {
      seenName = true;
    }
  }
  return ups <= depth;
}

/**
 * Number of components from the export root down to directory `dir`, found
 * by walking ".." on the host (not from the registry, which may lag behind
 * renames done inside the sandbox).
 */
export async function depthOf(efs: ExportFs, dir: string): Promise<number> {
  const lease = await efs.pathFd(dir);
  const fds: number[] = [];
  try {
    let cur = lease.fd;
    let key = inodeKey(await fstatFd(cur));
    for (let depth = 0; depth < 4096; depth++) {
      if (key === efs.rootKey) return depth;
      const up = await openFd(procPath(cur, '..'), O_PATH | O_DIRECTORY);
      fds.push(up);
      const upKey = inodeKey(await fstatFd(up));
      if (upKey === key) break; // ".." of "/" is "/": the root was never met
      cur = up;
      key = upKey;
    }
    throw new NfsError(Nfs3Status.STALE, 'directory is no longer below the export root');
  } finally {
    lease.release();
    await Promise.all(fds.map(closeFd));
  }
}
