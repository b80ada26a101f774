import { dirname, join } from 'node:path';
import type { SandboxCgroup } from './cgroup.js';
import { keyedValue, readOptional } from './cgroupfs.js';

/** What a sandbox consumes now, read from its cgroup (Sandboxes.Usage's figures). */
export interface CgroupUsage {
  /** CPU time of everything in the cgroup since it was made, µs; undefined without CPU accounting. */
  cpuUsageUs?: number;
  memoryBytes?: number;
  /** Undefined when unlimited. */
  memoryLimitBytes?: number;
  memoryPeakBytes?: number;
  tasks?: number;
  /** CPU quota as a share of one core; undefined when unbounded. */
  cpuLimit?: number;
}

/** A number from a one-value cgroup file; undefined when absent, "max" or not a number. */
async function numberIn(dirs: readonly string[], file: string): Promise<number | undefined> {
  for (const dir of dirs) {
    const text = await readOptional(join(dir, file));
    if (text === undefined) continue;
    const n = Number(text.trim().split(/\s+/)[0]);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

async function keyedIn(dirs: readonly string[], file: string, key: string): Promise<number | undefined> {
  for (const dir of dirs) {
    const text = await readOptional(join(dir, file));
    if (text !== undefined) return keyedValue(text, key);
  }
  return undefined;
}

/**
 * Reads a sandbox cgroup's usage without a method per driver: its directories are those of its
 * cgroup.procs files (one per v1 hierarchy, one for v2), and each figure is read from whichever
 * of them holds the file (v1: cpuacct.usage, memory.usage_in_bytes, ...; v2: cpu.stat,
 * memory.current, ...). Missing files (a controller not mounted or not delegated) leave the
 * figure out rather than failing: the console shows what there is.
 */
export async function readCgroupUsage(cgroup: SandboxCgroup, version: 'v1' | 'v2'): Promise<CgroupUsage> {
  const dirs = cgroup.procsFiles.map((f) => dirname(f));
  const u: CgroupUsage = {};
  if (version === 'v2') {
    const usec = await keyedIn(dirs, 'cpu.stat', 'usage_usec');
    if (usec !== undefined) u.cpuUsageUs = usec;
    set(u, 'memoryBytes', await numberIn(dirs, 'memory.current'));
    set(u, 'memoryLimitBytes', await numberIn(dirs, 'memory.max'));
    set(u, 'memoryPeakBytes', await numberIn(dirs, 'memory.peak'));
    const max = await readOptional(join(dirs[0] as string, 'cpu.max'));
    const [quota, period] = (max ?? '').trim().split(/\s+/).map(Number);
    if (quota !== undefined && period && Number.isFinite(quota)) u.cpuLimit = quota / period;
  } else {
    const ns = await numberIn(dirs, 'cpuacct.usage');
    if (ns !== undefined) u.cpuUsageUs = Math.round(ns / 1000);
    set(u, 'memoryBytes', await numberIn(dirs, 'memory.usage_in_bytes'));
    const limit = await numberIn(dirs, 'memory.limit_in_bytes');
    // v1 says "unlimited" with a page-rounded LONG_MAX.
    if (limit !== undefined && limit < 2 ** 62) u.memoryLimitBytes = limit;
    set(u, 'memoryPeakBytes', await numberIn(dirs, 'memory.max_usage_in_bytes'));
    const quota = await numberIn(dirs, 'cpu.cfs_quota_us');
    const period = await numberIn(dirs, 'cpu.cfs_period_us');
    if (quota !== undefined && quota > 0 && period) u.cpuLimit = quota / period;
  }
  set(u, 'tasks', await numberIn(dirs, 'pids.current'));
  return u;
}

function set<K extends keyof CgroupUsage>(u: CgroupUsage, key: K, value: CgroupUsage[K] | undefined): void {
  if (value !== undefined) u[key] = value;
}
