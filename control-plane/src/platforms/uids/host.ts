import { readdir, readFile } from 'node:fs/promises';

/**
 * True once no live process (zombies do not count) on this host runs with a real, effective, saved or filesystem uid in
 * [firstUid, firstUid + count); false if some still do after `timeoutMs`. Read from /proc, so
 * processes in other user and pid namespaces (sandboxes) count, with their host uids.
 */
export async function waitForUidsUnused(firstUid: number, count: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!(await anyProcessWithUid(firstUid, count))) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function anyProcessWithUid(firstUid: number, count: number): Promise<boolean> {
  return (await processesWithUid(firstUid, count)).length > 0;
}

/**
 * SIGKILLs every live process with a uid in [firstUid, firstUid + count) and answers how many
 * it found. Only for the range of an executor that is gone: that range is leased to it alone
 * (uid-lease.ts, ranges.ts), so anything still running with one of its uids is one of its
 * sandboxes that outlived it (bwrap's --die-with-parent does not reach a sandbox that was still
 * booting when its executor was SIGKILLed).
 */
export async function killProcessesWithUids(firstUid: number, count: number): Promise<number> {
  const pids = await processesWithUid(firstUid, count);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // ESRCH: it exited since the scan.
    }
  }
  return pids.length;
}

async function processesWithUid(firstUid: number, count: number): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    // A process that exits during the scan has no status any more: skipped, it is gone.
    const status = await readFile(`/proc/${name}/status`, 'utf8').catch(() => '');
    // A zombie runs nothing and holds no file: it only waits for its parent to reap it. The
    // sandboxes of a SIGKILLed executor are reparented to the host's init, and an init that
    // never reaps (a container's or VM's minimal one) would otherwise keep their executor's
    // files and uid range "in use" forever.
    if (/^State:\s+Z/m.test(status)) continue;
    const uids = (/^Uid:\s+(.*)$/m.exec(status)?.[1] ?? '').split(/\s+/).map(Number);
    if (uids.some((uid) => uid >= firstUid && uid < firstUid + count) && Number(name) !== process.pid) out.push(Number(name));
  }
  return out;
}
