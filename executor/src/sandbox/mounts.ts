import { execFile } from 'node:child_process';
import { readFile, realpath } from 'node:fs/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** PATH for the host tools this module runs (mount, umount, mkfs.ext4 live in sbin). */
export const TOOL_ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };

/** A host tool (mount, umount, mkfs.ext4, ...) failed; `stderr` says why. */
export class MountToolError extends Error {
  constructor(
    readonly tool: string,
    readonly args: readonly string[],
    readonly stderr: string,
  ) {
    super(`${tool} ${args.join(' ')} failed: ${stderr.trim() || 'no message'}`);
    this.name = 'MountToolError';
  }
}

/** Runs a host tool with a minimal environment (never the executor's, which holds its token). */
export async function runTool(tool: string, args: readonly string[]): Promise<void> {
  try {
    await run(tool, [...args], { env: TOOL_ENV, timeout: 60_000 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    throw new MountToolError(tool, args, e.stderr || e.message);
  }
}

/** /proc/self/mountinfo escapes space, tab, newline and backslash in paths as \ooo. */
function unescapeMountPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Mount points of this process's mount namespace, in mount order (a later one may sit on an earlier one). */
export async function mountPoints(): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const out: string[] = [];
  for (const line of text.split('\n')) {
    // id parent major:minor root mount-point options ...
    const field = line.split(' ')[4];
    if (field) out.push(unescapeMountPath(field));
  }
  return out;
}

/** True when `path` (resolved) is a mount point in this mount namespace. */
export async function isMountPoint(path: string): Promise<boolean> {
  const resolved = await realpath(path).catch(() => undefined);
  return resolved !== undefined && (await mountPoints()).includes(resolved);
}

/**
 * Detaches every mount strictly below `dir` (deepest and latest first; `dir` itself may be a
 * volume the operator mounted, and stays), so that `rm -r dir` neither
 * fails with EBUSY nor descends into a mounted filesystem and deletes what is on it. Lazy
 * (`umount -l`): whoever still holds a file open on one (an NFS handle, a files API stream, a
 * sandbox's mount namespace) keeps its filesystem until it lets go, but the tree is free at once,
 * and a loop device mounted with `-o loop` is freed when the last reference goes (autoclear).
 *
 * Call it before removing any directory that may hold an executor's workspaces: at the
 * executor's start-up for its own data dir, and in the control plane before it deletes a dead
 * executor's directory. Returns the mount points it detached; a missing `dir` is a no-op.
 */
export async function unmountBelow(dir: string): Promise<string[]> {
  const root = await realpath(dir).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));
  if (root === undefined) return [];
  if (root === '/') throw new Error('unmountBelow: refusing to detach every mount of the host (dir resolves to /)');
  const detached: string[] = [];
  // Mounts can be stacked on one point; each pass detaches the top ones. Bounded, in case a
  // mount cannot be detached at all (then the umount error says why).
  for (let pass = 0; pass < 8; pass++) {
    const below = (await mountPoints()).filter((p) => p.startsWith(`${root}/`));
    if (below.length === 0) return detached;
    // Reverse mount order: children and stacked mounts come after what they sit on.
    for (const point of below.reverse()) {
      try {
        await runTool('umount', ['-l', point]);
        detached.push(point);
      } catch (err) {
        // A parent's lazy detach already took this one with it: not an error.
        if (!(await mountPoints()).includes(point)) continue;
        throw err;
      }
    }
  }
  throw new Error(`mounts below ${root} remain after 8 passes of umount -l`);
}
