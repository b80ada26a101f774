import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/** Uids per lease block; the control plane's allocator (platforms/uids/ranges.ts) uses the same size. */
export const UID_BLOCK = 1000;
/** Exit status of an executor whose uid range is in use on this host; the local platform then tries another range. */
export const UID_RANGE_BUSY_EXIT = 75;

/** Some other process on this host holds or uses part of this executor's uid range. */
export class UidRangeBusyError extends Error {
  constructor(
    readonly firstUid: number,
    readonly count: number,
    readonly detail: string,
  ) {
    super(`host uids ${firstUid}-${firstUid + count - 1} are in use on this host: ${detail}`);
    this.name = 'UidRangeBusyError';
  }
}

/** Held for as long as the executor lives; `release` gives it back early (tests). */
export interface UidLease {
  release(): void;
}

/**
 * Makes this executor the only user of its host uid range on this host, for as long as it lives.
 *
 * The control plane's Redis allocator keeps ranges apart for every deployment on one Redis, but
 * two deployments on one host with different Redis servers cannot see each other's claims. Two
 * host-side guards close that gap:
 *
 * 1. An exclusive flock(2) per block of UID_BLOCK uids under a host-wide directory
 *    (`/run/kiln/uids/<firstUid>.lock`). A flock belongs to an open file and the kernel drops it
 *    when the last holder exits, SIGKILL included, so a crashed executor never leaves a stale
 *    lease (unlike pid files, which need a racy staleness check). Node has no flock, so
 *    util-linux's `flock` holds the locks in a helper (`flock … flock … cat`) whose stdin is a
 *    pipe from this process: when the executor dies, cat sees EOF and the locks go with it. The
 *    lock files are never opened in this process, so no descriptor of them can leak into a
 *    sandbox (where `flock(fd, LOCK_UN)` would drop the lease for everyone).
 * 2. After the locks are taken, no process on the host may run with a uid in the range: that
 *    catches what takes no lease (an executor of an older Kiln, another program using those
 *    uids, sandboxes of a killed executor still being torn down).
 *
 * Blocks keep ranges of different sizes comparable: any two ranges that overlap share a block.
 * `onLost` is called if the lock holder dies while the executor runs (someone killed it): the
 * range is then no longer guarded, and the executor should stop.
 */
export async function acquireUidLease(dir: string, firstUid: number, count: number, onLost: (reason: string) => void): Promise<UidLease> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const files: string[] = [];
  for (let b = Math.floor(firstUid / UID_BLOCK); b <= Math.floor((firstUid + count - 1) / UID_BLOCK); b++) files.push(join(dir, `${b * UID_BLOCK}.lock`));
  const argv = files.flatMap((f) => ['flock', '--nonblock', '--conflict-exit-code', String(UID_RANGE_BUSY_EXIT), f]);
  argv.push('sh', '-c', 'echo locked; exec cat >/dev/null');
  const [cmd, ...args] = argv as [string, ...string[]];
  // Same process group as the executor: stopping the executor's group stops the holder too.
  const holder = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  // Scanned while the locks are taken: the scan is for what takes no lease, so it need not follow them.
  const scanned = processWithUid(firstUid, count);
  const exited = new Promise<number | null>((resolve) => holder.once('exit', (code) => resolve(code)));
  const locked = await new Promise<boolean>((resolve, reject) => {
    holder.once('error', reject);
    createInterface({ input: holder.stdout }).once('line', (line) => resolve(line === 'locked'));
    void exited.then(() => resolve(false));
  });
  if (!locked) {
    const [code] = await Promise.all([exited, scanned]);
    if (code === UID_RANGE_BUSY_EXIT) throw new UidRangeBusyError(firstUid, count, `another executor holds a lease in ${dir}`);
    throw new Error(`could not take the uid lease in ${dir}: flock exited with status ${code}`);
  }
  let released = false;
  const lease: UidLease = {
    release: () => {
      released = true;
      holder.stdin.end();
    },
  };
  void exited.then((code) => {
    if (!released) onLost(`the uid lease holder (pid ${holder.pid}) exited with status ${code}`);
  });
  const user = await scanned;
  if (user) {
    lease.release();
    await exited;
    throw new UidRangeBusyError(firstUid, count, `process ${user.pid} runs as uid ${user.uid}`);
  }
  return lease;
}

/**
 * The first process found whose real, effective, saved or filesystem uid is in the range.
 * Processes that exit during the scan are skipped.
 */
export async function processWithUid(firstUid: number, count: number): Promise<{ pid: number; uid: number } | undefined> {
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let status: string;
    try {
      status = await readFile(`/proc/${name}/status`, 'utf8');
    } catch {
      continue;
    }
    const line = /^Uid:\s+(.*)$/m.exec(status)?.[1] ?? '';
    for (const uid of line.split(/\s+/).map(Number)) {
      if (uid >= firstUid && uid < firstUid + count) return { pid: Number(name), uid };
    }
  }
  return undefined;
}
