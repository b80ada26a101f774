import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { log } from './log.js';

/**
 * The Linux scheduling class the control plane's threads run in (KILN_CPU_POLICY).
 *
 * `batch` (SCHED_BATCH) is the default. A woken SCHED_BATCH thread does not preempt the one
 * running on its CPU; it gets the same CPU share, but waits for its turn. The control plane is
 * woken by every Redis reply, gRPC answer and HTTP request: as a normal thread each wake-up
 * preempted the executor, Redis or a runner, handled one event and handed the CPU back. As a
 * batch thread it finds several events ready when it runs. Measured on 2 cores (profile-hot,
 * same run, 16 sandboxes): 1300–1400 → 1520–1720 hot requests/s at 32 and 128 clients, with
 * the same sequential p50. On an idle host it changes nothing: a wake-up finds an idle CPU.
 * Processes the control plane starts (local executors and their sandboxes) inherit it.
 */
export type CpuPolicy = 'batch' | 'normal';

const SCHED_OTHER = 0;
const SCHED_BATCH = 3;

/**
 * Moves every thread of this process to `policy`; threads started later inherit it. Node has
 * no binding for sched_setscheduler(2), so util-linux's `chrt` makes the call (no privilege is
 * needed to choose SCHED_BATCH or SCHED_OTHER). A process started in another class (an
 * operator's `chrt --idle` or `--fifo`) keeps it. Returns whether the process now runs under
 * `policy`; where it cannot be set, a warning, and the control plane runs as before.
 */
export function applyCpuPolicy(policy: CpuPolicy, pid = process.pid): boolean {
  if (process.platform !== 'linux') return false;
  try {
    const current = threadPolicy(pid);
    if (current === policy) return true;
    if (current === 'other') {
      log('info', 'kept the CPU scheduling policy the process was started with', { wanted: policy });
      return false;
    }
    execFileSync('chrt', [policy === 'batch' ? '--batch' : '--other', '--all-tasks', '--pid', '0', String(pid)], { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch (err) {
    log('warn', 'could not set the CPU scheduling policy', { policy, error: (err as Error).message });
    return false;
  }
}

/** The scheduling policy of one thread (the main one by default), from /proc. */
export function threadPolicy(pid: number, tid = pid): CpuPolicy | 'other' {
  const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
  // Field 41 is the policy; the fields after the command name (which may hold spaces) start at 3.
  const policy = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[41 - 3]);
  if (policy === SCHED_BATCH) return 'batch';
  if (policy === SCHED_OTHER) return 'normal';
  return 'other';
}

/** The scheduling policy of each thread of a process, for checks and tests. */
export function threadPolicies(pid = process.pid): Array<CpuPolicy | 'other'> {
  return readdirSync(`/proc/${pid}/task`).map((tid) => threadPolicy(pid, Number(tid)));
}
