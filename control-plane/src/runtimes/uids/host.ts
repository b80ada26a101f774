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
    if (uids.some((uid) => uid >= firstUid && uid < firstUid + count)) return true;
  }
  return false;
}
