import { posix } from 'node:path';

/**
 * E2B's SDKs and the code written for them work in `/home/user`; Kiln's sandboxes keep the
 * client's files in `/workspace`. Inside every sandbox `/home/user` is a symbolic link to
 * `/workspace` (executor/src/sandbox/bwrap-args.ts), so commands see one tree under both names.
 * Host-side file operations never follow links, so the files routes translate the name instead:
 * `/home/user/x` (and a relative `x`, which E2B resolves against the home directory) is
 * `/workspace/x`; any other absolute path is passed on as it is, and the executor refuses what
 * is outside `/workspace` (400).
 */
export const E2B_HOME = '/home/user';
const WORKSPACE = '/workspace';

export function toWorkspace(path: string): string {
  if (!path) return WORKSPACE;
  if (!path.startsWith('/')) return posix.join(WORKSPACE, path);
  const norm = posix.normalize(path);
  if (norm === E2B_HOME || norm === `${E2B_HOME}/`) return WORKSPACE;
  if (norm.startsWith(`${E2B_HOME}/`)) return WORKSPACE + norm.slice(E2B_HOME.length);
  return path;
}

/** The name E2B clients know a workspace path by. */
export function fromWorkspace(path: string): string {
  if (path === WORKSPACE) return E2B_HOME;
  if (path.startsWith(`${WORKSPACE}/`)) return E2B_HOME + path.slice(WORKSPACE.length);
  return path;
}

/**
 * A process's working directory: the one asked for as it is (inside the sandbox `/home/user`
 * resolves through the link), or home, so `pwd` says `/home/user` as on E2B.
 */
export function processCwd(cwd: string | undefined): string {
  return cwd || E2B_HOME;
}
