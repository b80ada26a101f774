import { posix } from 'node:path';
import { PathOutsideWorkspaceError } from '../errors.js';

export const WORKSPACE = '/workspace';

/**
 * Normalises a client path (relative to /workspace, or absolute) to an absolute sandbox path,
 * refusing anything outside /workspace once `..` segments are resolved. This is string work
 * only: what the path names on disk is found by `components` and an fd walk (ops.ts), which
 * never follows a symlink.
 */
export function insidePath(path: string): string {
  if (path.includes('\0')) throw new PathOutsideWorkspaceError(path);
  const abs = posix.normalize(path.startsWith('/') ? path : posix.join(WORKSPACE, path || '.'));
  const trimmed = abs.length > 1 && abs.endsWith('/') ? abs.slice(0, -1) : abs;
  if (trimmed !== WORKSPACE && !trimmed.startsWith(`${WORKSPACE}/`)) throw new PathOutsideWorkspaceError(path);
  return trimmed;
}

/** The names below /workspace of a path from `insidePath` ([] for /workspace itself). */
export function components(inside: string): string[] {
  return inside === WORKSPACE ? [] : inside.slice(WORKSPACE.length + 1).split('/');
}
