import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { CgroupDriver, CgroupLimits, SandboxCgroup } from './cgroup.js';
import { CFS_PERIOD_US, MIB, cfsQuotaUs } from './cgroup.js';
import { checkName, checkPid, makeDir, keyedValue, killAll, procsOf, readOptional, readText, removeDir, waitFor, writeOptional, writeText } from './cgroupfs.js';

/**
 * v1 controllers a sandbox is placed in; memory and pids are required, cpu, cpuacct (CPU time
 * read by Sandboxes.Usage) and freezer (pause, and a race-free kill) used when mounted.
 */
export const V1_CONTROLLERS = ['memory', 'pids', 'cpu', 'cpuacct', 'freezer'] as const;
export type V1Controller = (typeof V1_CONTROLLERS)[number];

/**
 * cgroup v1: one directory per controller hierarchy (`<mount>/<executor's cgroup>/<parent>`),
 * and a sandbox's cgroup is a directory of the same name in each. A process joins by writing
 * its pid into each hierarchy's cgroup.procs.
 */
export class CgroupV1Driver implements CgroupDriver {
  readonly version = 'v1';

  /** `parents`: per controller, the directory (already created) under which sandboxes go. */
  constructor(private readonly parents: Partial<Record<V1Controller, string>>) {
    if (!parents.memory || !parents.pids) throw new Error('cgroup v1 needs the memory and pids controllers');
  }

  private dirs(name: string): Array<[V1Controller, string]> {
    checkName(name);
    return Object.entries(this.parents).map(([c, parent]) => [c as V1Controller, join(parent, name)]);
  }

  async create(name: string, limits: CgroupLimits): Promise<SandboxCgroup> {
    const dirs = Object.fromEntries(this.dirs(name)) as Partial<Record<V1Controller, string>>;
    for (const dir of Object.values(dirs)) await makeDir(dir);
    const cg = new CgroupV1(dirs);
    // Swap off: memory.swappiness=0 keeps the kernel from swapping the sandbox's pages, and a
    // memory+swap limit equal to the memory limit (set by setMemoryLimit) makes sure of it.
    await writeText(join(dirs.memory as string, 'memory.swappiness'), '0');
    await cg.setMemoryLimit(limits.memoryMB);
    await writeText(join(dirs.pids as string, 'pids.max'), String(limits.maxProcesses));
    if (dirs.cpu) {
      await writeText(join(dirs.cpu, 'cpu.cfs_period_us'), String(CFS_PERIOD_US));
      await writeText(join(dirs.cpu, 'cpu.cfs_quota_us'), String(cfsQuotaUs(limits.cpus)));
    }
    return cg;
  }

  async remove(name: string): Promise<void> {
    const dirs = Object.fromEntries(this.dirs(name)) as Partial<Record<V1Controller, string>>;
    await killCgroupV1(dirs);
    for (const dir of Object.values(dirs)) await removeDir(dir);
  }

  async close(): Promise<void> {
    for (const parent of Object.values(this.parents)) {
      for (const entry of await readdir(parent, { withFileTypes: true }).catch(() => [])) {
        if (entry.isDirectory()) await this.remove(entry.name);
      }
      await removeDir(parent);
    }
  }
}

/**
 * Kills every process in a v1 sandbox cgroup. With the freezer, the group is frozen first so
 * nothing can fork between the read of cgroup.procs and the kill (SIGKILL reaches frozen
 * tasks, which die once thawed); without it, the loop repeats until the group is empty, which
 * pids.max bounds.
 */
async function killCgroupV1(dirs: Partial<Record<V1Controller, string>>): Promise<void> {
  const probe = dirs.pids as string;
  // Usually empty already (the sandbox's PID namespace died with it): no freeze, which costs ~25 ms.
  if ((await procsOf(probe)).length === 0) return;
  const frozen = dirs.freezer ? await freeze(dirs.freezer) : false;
  const emptied = await waitFor(async () => {
    const pids = await procsOf(probe);
    killAll(pids);
    if (frozen && pids.length > 0) await writeOptional(join(dirs.freezer as string, 'freezer.state'), 'THAWED');
    return pids.length === 0;
  }, 2000);
  if (!emptied) throw new Error(`processes are left in cgroup ${probe} after SIGKILL`);
}

async function freeze(dir: string, waitMs = 1000): Promise<boolean> {
  if (!(await writeOptional(join(dir, 'freezer.state'), 'FROZEN'))) return false;
  return waitFor(async () => (await readOptional(join(dir, 'freezer.state'))) !== 'FREEZING', waitMs);
}

class CgroupV1 implements SandboxCgroup {
  readonly procsFiles: readonly string[];
  /** The limit now; a new cgroup starts unlimited. */
  private memoryMB = Infinity;

  constructor(private readonly dirs: Partial<Record<V1Controller, string>>) {
    this.procsFiles = Object.values(dirs).map((d) => join(d, 'cgroup.procs'));
  }

  private get memory(): string {
    return this.dirs.memory as string;
  }

  async addProcess(pid: number): Promise<void> {
    checkPid(pid);
    for (const file of this.procsFiles) await writeText(file, String(pid));
  }

  async setMemoryLimit(memoryMB: number): Promise<void> {
    const bytes = String(memoryMB * MIB);
    // memory.memsw.limit_in_bytes (memory + swap) may never be below memory.limit_in_bytes:
    // raise it first when growing, lower it last when shrinking. Absent without swap accounting.
    const memsw = join(this.memory, 'memory.memsw.limit_in_bytes');
    if (memoryMB > this.memoryMB) {
      await writeOptional(memsw, bytes);
      await writeText(join(this.memory, 'memory.limit_in_bytes'), bytes);
    } else {
      await writeText(join(this.memory, 'memory.limit_in_bytes'), bytes);
      await writeOptional(memsw, bytes);
    }
    this.memoryMB = memoryMB;
  }

  async oomKills(): Promise<number> {
    return keyedValue(await readOptional(join(this.memory, 'memory.oom_control')), 'oom_kill');
  }

  async peakMemoryBytes(): Promise<number | undefined> {
    const text = await readOptional(join(this.memory, 'memory.max_usage_in_bytes'));
    return text === undefined ? undefined : Number(text);
  }

  get canFreeze(): boolean {
    return this.dirs.freezer !== undefined;
  }

  async freeze(): Promise<void> {
    // A task in an uninterruptible sleep (disk I/O) holds FREEZING until it returns: wait longer than a kill does.
    if (this.dirs.freezer && !(await freeze(this.dirs.freezer, 10_000))) throw new Error(`cgroup ${this.dirs.freezer} did not finish freezing within 10 s`);
  }

  async thaw(): Promise<void> {
    if (this.dirs.freezer) await writeText(join(this.dirs.freezer, 'freezer.state'), 'THAWED');
  }

  async processes(): Promise<number[]> {
    return procsOf(this.dirs.pids as string);
  }

  async memoryLimitMB(): Promise<number> {
    return Number(await readText(join(this.memory, 'memory.limit_in_bytes'))) / MIB;
  }
}
