import { readdirSync, readFileSync } from 'node:fs';

/** CPU time (ms, user + system) of this process's descendants, by role. */
export type CpuByRole = Map<string, number>;

const TICK_MS = 10; // USER_HZ is 100 on Linux

interface Proc {
  pid: number;
  ppid: number;
  cpuMs: number;
  role: string;
}

function readProc(pid: number): Proc | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may hold spaces and parentheses: the fields after it start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
    const role = /redis-server/.test(cmd) ? 'redis' : /executor\/dist\//.test(cmd) ? 'executor' : /load-client/.test(cmd) ? 'load client' : 'sandbox';
    return { pid, ppid: Number(fields[1]), cpuMs: (Number(fields[11]) + Number(fields[12])) * TICK_MS, role };
  } catch {
    return undefined; // exited meanwhile
  }
}

/**
 * The CPU used so far by every live descendant of this process, summed by role: `redis`,
 * `executor` (the executors' node processes), `sandbox` (bwrap and everything in it: the
 * runners) and `load client`. Processes that exited
 * within the window are not counted (warm pools keep their runners alive).
 */
export function descendantCpu(): CpuByRole {
  const procs = new Map<number, Proc>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const p = readProc(Number(name));
    if (p) procs.set(p.pid, p);
  }
  const out: CpuByRole = new Map();
  for (const p of procs.values()) {
    let cur: Proc | undefined = p;
    let role = p.role;
    while (cur && cur.ppid !== process.pid) {
      cur = procs.get(cur.ppid);
      // A child of the load client or of Redis is theirs; a child of an executor is a sandbox.
      if (role === 'sandbox' && (cur?.role === 'load client' || cur?.role === 'redis')) role = cur.role;
    }
    if (!cur) continue; // not a descendant
    out.set(role, (out.get(role) ?? 0) + p.cpuMs);
  }
  return out;
}

/** CPU ms per request of each role between two readings. */
export function cpuPerRequest(before: CpuByRole, after: CpuByRole, requests: number): string {
  return [...after]
    .map(([role, ms]) => `${role} ${((ms - (before.get(role) ?? 0)) / requests).toFixed(2)}`)
    .sort()
    .join(', ');
}
