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
