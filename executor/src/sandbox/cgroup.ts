import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { BootContext, BootStep } from './boot-step.js';
import { CgroupV1Driver, V1_CONTROLLERS, type V1Controller } from './cgroup-v1.js';
import { CgroupV2Driver, prepareV2Parent } from './cgroup-v2.js';
import { cgroupDir, checkName, makeDir, parseMountinfo, parseProcCgroup, removeDir } from './cgroupfs.js';
import type { SandboxSpec } from './spec.js';

export const MIB = 1024 * 1024;
/** CFS period for the CPU quota: the kernel's default, 100 ms. */
export const CFS_PERIOD_US = 100_000;

/** CPU quota per period for `cpus` cores (0.5 = half a core); at least 1 ms, the kernel's floor. */
export function cfsQuotaUs(cpus: number): number {
  return Math.max(1000, Math.round(cpus * CFS_PERIOD_US));
}

/** What a sandbox's cgroup bounds, for everything in it. */
export interface CgroupLimits {
  /** Memory + tmpfs/shm pages its processes write, in MB; no swap. */
  memoryMB: number;
  /** Tasks (processes and threads), as pids.max. */
  maxProcesses: number;
  /** CPU time per period as a share of one core (template `resources.cpu`). */
  cpus: number;
}

/** One sandbox's cgroup: what the rest of the executor reads and changes while the sandbox lives. */
export interface SandboxCgroup {
  /**
   * The cgroup.procs files (one per v1 hierarchy, one for v2) a process writes its own pid into
   * to join: the launcher of a session process does, before it executes anything else.
   */
  readonly procsFiles: readonly string[];
  addProcess(pid: number): Promise<void>;
  /** Changes the memory limit (a function's memorySize, set when the sandbox loads it). */
  setMemoryLimit(memoryMB: number): Promise<void>;
  memoryLimitMB(): Promise<number>;
  /** Processes the kernel's OOM killer has killed in this cgroup since it was made. */
  oomKills(): Promise<number>;
  /** Peak memory of the whole cgroup since it was made; undefined when the kernel does not say. */
  peakMemoryBytes(): Promise<number | undefined>;
  /** Stops every process in the cgroup until `thaw` (freezer). */
  freeze(): Promise<void>;
  thaw(): Promise<void>;
  /** Pids of the processes in the cgroup (host pid namespace). */
  processes(): Promise<number[]>;
}

/** Creates and removes sandbox cgroups below the executor's own; one adapter per cgroup version. */
export interface CgroupDriver {
  readonly version: 'v1' | 'v2';
  /** Makes the cgroup `name` with its limits; fails if it exists. */
  create(name: string, limits: CgroupLimits): Promise<SandboxCgroup>;
  /** Kills whatever is left in cgroup `name` and removes it; a no-op when it does not exist. */
  remove(name: string): Promise<void>;
  /** Removes every sandbox cgroup left and the executor's parent cgroup (at shutdown). */
  close(): Promise<void>;
}

/** How this executor bounds its sandboxes; reported at start-up and by the Health RPC. */
export type CgroupSupport = { driver: CgroupDriver; detail: string } | { driver: undefined; detail: string };

/**
 * Finds the cgroup hierarchy the executor can create sandbox cgroups in, below its own cgroup,
 * in a directory named after `executorId` (any left from an earlier executor of the same id is
 * emptied and reused). v1 when a v1 memory hierarchy is mounted (hybrid hosts such as this one
 * mount an unified hierarchy without controllers beside it), otherwise v2 with the memory
 * controller. Never throws: where cgroups cannot be made (an unprivileged container without a
 * delegated subtree, a read-only /sys/fs/cgroup) it says why and the executor relies on the
 * limits of its container.
 */
export async function detectCgroups(executorId: string): Promise<CgroupSupport> {
  const parentName = `kiln-${executorId.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 90)}`;
  try {
    checkName(parentName);
    const mounts = parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8'));
    const own = parseProcCgroup(await readFile('/proc/self/cgroup', 'utf8'));
    const v1Memory = mounts.find((m) => m.fsType === 'cgroup' && m.controllers.includes('memory'));
    if (v1Memory) {
      const parents: Partial<Record<V1Controller, string>> = {};
      for (const controller of V1_CONTROLLERS) {
        const mount = mounts.find((m) => m.fsType === 'cgroup' && m.controllers.includes(controller));
        const path = own.get(controller);
        const dir = mount && path !== undefined ? cgroupDir(mount, path) : undefined;
        if (!dir) continue;
        parents[controller] = join(dir, parentName);
      }
      if (!parents.pids) return { driver: undefined, detail: 'cgroup v1 is mounted without the pids controller' };
      for (const dir of Object.values(parents)) await makeDir(dir, true);
      const driver = new CgroupV1Driver(parents);
      await removeLeftovers(driver, parents.pids);
      return { driver, detail: `cgroup v1 (${Object.keys(parents).join(', ')}) under ${parents.memory}` };
    }
    const v2 = mounts.find((m) => m.fsType === 'cgroup2');
    const path = own.get('');
    const ownDir = v2 && path !== undefined ? cgroupDir(v2, path) : undefined;
    if (!ownDir) return { driver: undefined, detail: 'no cgroup v2 hierarchy holds this process, and no cgroup v1 memory hierarchy is mounted' };
    const { parent, controllers } = await prepareV2Parent(ownDir, parentName, ['memory', 'pids', 'cpu']);
    if (!controllers.includes('memory') || !controllers.includes('pids')) {
      await removeDir(parent).catch(() => undefined); // best effort: it is empty, and unused either way
      return { driver: undefined, detail: `cgroup v2 at ${ownDir} does not delegate the memory and pids controllers (has: ${controllers.join(' ') || 'none'})` };
    }
    const driver = new CgroupV2Driver(parent, controllers);
    await removeLeftovers(driver, parent);
    return { driver, detail: `cgroup v2 (${controllers.join(', ')}) under ${parent}` };
  } catch (err) {
    return { driver: undefined, detail: `cannot create cgroups: ${(err as Error).message}` };
  }
}

/** Sandbox cgroups left by a crashed executor of the same id: their processes are killed. */
async function removeLeftovers(driver: CgroupDriver, parent: string): Promise<void> {
  for (const entry of await readdir(parent, { withFileTypes: true })) if (entry.isDirectory()) await driver.remove(entry.name);
}

/**
 * The `cgroup` boot step: a cgroup per sandbox with its memory, pids and CPU limits, joined by
 * bwrap and the sandbox's init while bwrap holds the sandbox, so every process the sandbox
 * ever runs (forked later from them) is inside it. Session processes join it themselves (see
 * process/command.ts). Release kills what is left in it and removes it.
 */
export class CgroupStep implements BootStep {
  readonly name = 'cgroup';

  constructor(private readonly driver: CgroupDriver) {}

  async attach(ctx: BootContext): Promise<void> {
    const { spec } = ctx;
    // A cgroup left by an earlier sandbox of this id (its release failed) would make mkdir fail.
    await this.driver.remove(spec.id);
    const cgroup = await this.driver.create(spec.id, { memoryMB: spec.memoryMB, maxProcesses: spec.maxProcesses, cpus: spec.cpus });
    await cgroup.addProcess(ctx.bwrapPid);
    await cgroup.addProcess(ctx.namespacePid);
    ctx.useCgroup(cgroup);
  }

  release(spec: SandboxSpec): Promise<void> {
    return this.driver.remove(spec.id);
  }
}
