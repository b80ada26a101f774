import { readFile } from 'node:fs/promises';

/** Direct children of a process, from /proc (needs CONFIG_PROC_CHILDREN, standard on Linux). */
export async function childPids(pid: number): Promise<number[]> {
  try {
    const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8');
    return text.split(' ').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** A process and all its descendants. */
export async function processTree(pid: number): Promise<number[]> {
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const next = queue.shift() as number;
    out.push(next);
    queue.push(...(await childPids(next)));
  }
  return out;
}

/** Reads VmRSS and VmHWM (peak) of one process in kB; zeros when it is gone. */
export async function memoryKB(pid: number): Promise<{ rss: number; peak: number }> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const rss = /VmRSS:\s+(\d+)/.exec(status)?.[1];
    const peak = /VmHWM:\s+(\d+)/.exec(status)?.[1];
    return { rss: Number(rss ?? 0), peak: Number(peak ?? 0) };
  } catch {
    return { rss: 0, peak: 0 };
  }
}

/** Sum of the resident memory of a process tree, in MB. */
export async function treeRssMB(pid: number): Promise<number> {
  let kb = 0;
  for (const p of await processTree(pid)) kb += (await memoryKB(p)).rss;
  return kb / 1024;
}
