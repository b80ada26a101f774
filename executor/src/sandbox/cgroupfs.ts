import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

/** A cgroup filesystem mounted on this host (one line of /proc/self/mountinfo). */
export interface CgroupMount {
  /** `cgroup` (v1, one hierarchy per set of controllers) or `cgroup2` (the unified hierarchy). */
  fsType: 'cgroup' | 'cgroup2';
  /** Where it is mounted. */
  mountPoint: string;
  /** The path of the hierarchy that is mounted there (`/` except in some containers). */
  root: string;
  /** v1 controllers of this hierarchy (from the super options); empty for cgroup2. */
  controllers: string[];
}

/** Every cgroup mount, from /proc/self/mountinfo (mount root, mount point, fs type, super options). */
export function parseMountinfo(text: string): CgroupMount[] {
  const mounts: CgroupMount[] = [];
  for (const line of text.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post) continue;
    const fields = pre.split(' ');
    const [fsType, , superOptions = ''] = post.split(' ');
    if (fsType !== 'cgroup' && fsType !== 'cgroup2') continue;
    const controllers = fsType === 'cgroup' ? superOptions.split(',').filter((o) => o !== 'rw' && o !== 'ro' && !o.includes('=')) : [];
    mounts.push({ fsType, root: unescape(fields[3] ?? '/'), mountPoint: unescape(fields[4] ?? ''), controllers });
  }
  return mounts;
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * This process's cgroup per v1 controller, and under the key "" its v2 cgroup, from
 * /proc/self/cgroup (`id:controllers:path`, `0::path` for v2).
 */
export function parseProcCgroup(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    const [, controllers = '', path = '/'] = m;
    if (controllers === '') out.set('', path);
    for (const c of controllers.split(',')) if (c) out.set(c, path);
  }
  return out;
}

/**
 * The directory of cgroup `path` in a mount: the mount shows its hierarchy from `root` down
 * (a container sees its own cgroup as its mount's root). Undefined when `path` is not below it.
 */
export function cgroupDir(mount: CgroupMount, path: string): string | undefined {
  const rel = relative(mount.root, path);
  if (rel.startsWith('..')) return undefined;
  return join(mount.mountPoint, rel);
}

// cgroupfs files live in kernel memory: reading or writing one takes microseconds, less than a
// round trip through libuv's thread pool (measured here: creating a v1 sandbox cgroup took
// 23 ms through fs/promises and 1.4 ms with synchronous calls). So the calls are synchronous,
// behind async functions in case that ever changes.

export function readText(path: string): Promise<string> {
  return Promise.resolve(readFileSync(path, 'utf8').trim());
}

/** mkdir of a cgroup (recursive: parents made as needed; an existing one is fine then). */
export function makeDir(path: string, recursive = false): Promise<void> {
  mkdirSync(path, { recursive });
  return Promise.resolve();
}

/** Reads a cgroup file, or undefined when the file does not exist (controller or kernel lacks it). */
export async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readText(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export function writeText(path: string, value: string): Promise<void> {
  writeFileSync(path, value);
  return Promise.resolve();
}

/** Writes a cgroup file that only some kernels or controllers have; false when it is absent. */
export function writeOptional(path: string, value: string): Promise<boolean> {
  try {
    writeFileSync(path, value);
    return Promise.resolve(true);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return e.code === 'ENOENT' ? Promise.resolve(false) : Promise.reject(e);
  }
}

/** The value of `key` in a flat-keyed cgroup file (`memory.events`, `memory.oom_control`). */
export function keyedValue(text: string | undefined, key: string): number {
  const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(text ?? '');
  return m ? Number(m[1]) : 0;
}

export async function procsOf(dir: string): Promise<number[]> {
  const text = await readOptional(join(dir, 'cgroup.procs'));
  return (text ?? '').split('\n').filter(Boolean).map(Number);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * A pid that may be moved into or killed through a sandbox cgroup: never init (1) or the
 * executor itself, whatever a cgroup file or a caller says.
 */
export function checkPid(pid: number): number {
  if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) throw new Error(`refusing to move or kill pid ${pid} through a sandbox cgroup`);
  return pid;
}

/** SIGKILLs every process in the list; one that already exited is not an error. */
export function killAll(pids: number[]): void {
  for (const pid of pids) {
    if (pid <= 1 || pid === process.pid) continue; // see checkPid
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // ESRCH: it exited between the read of cgroup.procs and now.
    }
  }
}

/** Waits up to `ms` for `done` to hold, checking every few ms; returns whether it did. */
export async function waitFor(done: () => Promise<boolean>, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  for (let pause = 1; ; pause = Math.min(pause * 2, 10)) {
    if (await done()) return true;
    if (Date.now() >= until) return false;
    await sleep(pause);
  }
}

/**
 * Removes an empty cgroup directory. A killed process leaves its cgroup a moment after it is
 * reaped, so EBUSY is retried for up to `ms`; a directory already gone is fine.
 */
export async function removeDir(dir: string, ms = 2000): Promise<void> {
  let lastError: unknown;
  const removed = await waitFor(() => {
    try {
      rmdirSync(dir);
      return Promise.resolve(true);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ENOENT') return Promise.resolve(true);
      if (e.code !== 'EBUSY') return Promise.reject(e);
      lastError = e;
      return Promise.resolve(false);
    }
  }, ms);
  if (!removed) throw new Error(`cgroup ${dir} still busy after ${ms} ms: ${String(lastError)}`);
}

/** Validates a cgroup name: one path component the executor chose (sandbox or executor id). */
export function checkName(name: string): string {
  if (!/^[A-Za-z0-9_.-]{1,100}$/.test(name) || name === '.' || name === '..') throw new Error(`invalid cgroup name "${name}"`);
  return name;
}
