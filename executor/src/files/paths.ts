import { lstat, realpath } from 'node:fs/promises';
import { dirname, posix, relative, resolve, sep } from 'node:path';
import type { SandboxSpec } from '../sandbox/spec.js';
import { PathOutsideWorkspaceError } from '../session/errors.js';

export const WORKSPACE = '/workspace';

/** A path both as the sandbox sees it and where it lives on the host. */
export interface ResolvedPath {
  /** e.g. /workspace/src/a.py */
  inside: string;
  /** e.g. <dataDir>/sandboxes/<id>/workspace/src/a.py */
  host: string;
}

/**
 * Normalises a client path (relative to /workspace, or absolute) to an absolute sandbox path,
 * refusing anything outside /workspace once `..` segments are resolved.
 */
export function insidePath(path: string): string {
  if (path.includes('\0')) throw new PathOutsideWorkspaceError(path);
  const abs = posix.normalize(path.startsWith('/') ? path : posix.join(WORKSPACE, path || '.'));
  const trimmed = abs.length > 1 && abs.endsWith('/') ? abs.slice(0, -1) : abs;
  if (trimmed !== WORKSPACE && !trimmed.startsWith(`${WORKSPACE}/`)) throw new PathOutsideWorkspaceError(path);
  return trimmed;
}

function within(root: string, p: string): boolean {
  const rel = relative(root, p);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !rel.startsWith(sep));
}

/**
 * Resolves a client path to its host location. Symlinks are followed on the host, so a link
 * must stay inside the workspace once resolved (links to absolute sandbox paths such as
 * /workspace/x point nowhere on the host and are refused too, which errs on the safe side).
 * With `followLast: false` the last component itself may be a symlink (remove, rename).
 *
 * The check and the later open are not atomic; sandbox processes could swap a directory for a
 * link in between. Writes therefore open the final component with O_NOFOLLOW as well.
 */
export async function resolvePath(spec: SandboxSpec, path: string, opts: { followLast: boolean } = { followLast: true }): Promise<ResolvedPath> {
  const inside = insidePath(path);
  const root = await realpath(spec.workspaceDir);
  const host = resolve(root, `.${inside.slice(WORKSPACE.length)}`);
  // The deepest existing ancestor (or the path itself) must resolve inside the workspace.
  let probe = opts.followLast ? host : dirname(host);
  if (!opts.followLast && host === root) probe = root;
  for (;;) {
    try {
      await lstat(probe);
      break;
    } catch {
      if (probe === root) break;
      probe = dirname(probe);
    }
  }
  let real: string;
  try {
    real = await realpath(probe);
  } catch {
    // A dangling symlink: it points somewhere that does not exist, inside or out.
    throw new PathOutsideWorkspaceError(path);
  }
  if (!within(root, real)) throw new PathOutsideWorkspaceError(path);
  return { inside, host: real === probe ? host : resolve(real, relative(probe, host)) };
}
