import { readFile, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { BootContext, BootStep } from './boot-step.js';
import { CgroupV1Driver, V1_CONTROLLERS, type V1Controller } from './cgroup-v1.js';
import { CgroupV2Driver, prepareV2Parent } from './cgroup-v2.js';
import { cgroupDir, checkName, makeDir, parseMountinfo, parseProcCgroup, removeDir, writeText } from './cgroupfs.js';
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
  /** True when `freeze` really stops the processes (v2 always; v1 only with the freezer mounted). */
  readonly canFreeze: boolean;
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

/** Where an executor's sandbox cgroups go: its parent per v1 controller, or one v2 parent. */
type ExecutorCgroupPlace =
  | { version: 1; parents: Partial<Record<V1Controller, string>> }
  | { version: 2; ownDir: string; parent: string }
  | { version: undefined; detail: string };

/**
 * The directories named after `executorId` below this process's own cgroup, in the v1 memory
 * hierarchy's controllers when one is mounted (hybrid hosts such as this one mount an unified
 * hierarchy without controllers beside it), otherwise in cgroup v2. Creates nothing. The
 * control plane gets the same answer for an executor it started (it runs in the control plane's
 * cgroup), which is how it removes a dead executor's cgroups (`releaseExecutorCgroups`).
 */
async function placeOf(executorId: string): Promise<ExecutorCgroupPlace> {
  const parentName = `kiln-${executorId.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 90)}`;
  checkName(parentName);
  const mounts = parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8'));
  const own = parseProcCgroup(await readFile('/proc/self/cgroup', 'utf8'));
  if (mounts.some((m) => m.fsType === 'cgroup' && m.controllers.includes('memory'))) {
    const parents: Partial<Record<V1Controller, string>> = {};
    for (const controller of V1_CONTROLLERS) {
      const mount = mounts.find((m) => m.fsType === 'cgroup' && m.controllers.includes(controller));
      const path = own.get(controller);
      const dir = mount && path !== undefined ? cgroupDir(mount, path) : undefined;
      // Co-mounted controllers ("cpu,cpuacct") share one directory: it is made and joined once.
      if (dir && !Object.values(parents).includes(join(dir, parentName))) parents[controller] = join(dir, parentName);
    }
    if (!parents.pids) return { version: undefined, detail: 'cgroup v1 is mounted without the pids controller' };
    return { version: 1, parents };
  }
  const v2 = mounts.find((m) => m.fsType === 'cgroup2');
  const path = own.get('');
  const ownDir = v2 && path !== undefined ? cgroupDir(v2, path) : undefined;
  if (!ownDir) return { version: undefined, detail: 'no cgroup v2 hierarchy holds this process, and no cgroup v1 memory hierarchy is mounted' };
  return { version: 2, ownDir, parent: join(ownDir, parentName) };
}

/**
 * The CPU weight of the executor's parent cgroup: that of `maxSandboxes` ordinary processes.
 * Without cgroups, each sandbox's processes competed with the host's (the control plane, Redis,
 * the executor) as tasks of the default weight each; grouped under one parent of the default
 * weight, all of an executor's sandboxes together would weigh as much as one process and wait
 * behind the rest under load (hot throughput fell by about a third on this 2-core host). Among
 * themselves sandboxes keep equal weights; each one's quota still caps it. v1 `cpu.shares`
 * (default 1024, at most 262144), v2 `cpu.weight` (default 100, at most 10000).
 */
export function parentCpuWeight(maxSandboxes: number): { v1: number; v2: number } {
  const n = Math.max(1, Math.floor(maxSandboxes));
  return { v1: Math.min(262_144, 1024 * n), v2: Math.min(10_000, 100 * n) };
}

/**
 * Finds the cgroup hierarchy the executor can create sandbox cgroups in, below its own cgroup,
 * in a directory named after `executorId` (any left from an earlier executor of the same id is
 * emptied and reused) weighted for `maxSandboxes` (parentCpuWeight): v1 when a v1 memory hierarchy is mounted, otherwise v2 with the memory
 * controller. Never throws: where cgroups cannot be made (an unprivileged container without a
 * delegated subtree, a read-only /sys/fs/cgroup) it says why and the executor relies on the
 * limits of its container.
 */
export async function detectCgroups(executorId: string, maxSandboxes = 1): Promise<CgroupSupport> {
  try {
    const place = await placeOf(executorId);
    if (place.version === undefined) return { driver: undefined, detail: place.detail };
    if (place.version === 1) {
      const { parents } = place;
      for (const dir of Object.values(parents)) await makeDir(dir, true);
      if (parents.cpu) await writeText(join(parents.cpu, 'cpu.shares'), String(parentCpuWeight(maxSandboxes).v1));
      const driver = new CgroupV1Driver(parents);
      await removeLeftovers(driver, parents.pids as string);
      return { driver, detail: `cgroup v1 (${Object.keys(parents).join(', ')}) under ${parents.memory}` };
    }
    const parentName = basename(place.parent);
    const { parent, controllers } = await prepareV2Parent(place.ownDir, parentName, ['memory', 'pids', 'cpu']);
    if (!controllers.includes('memory') || !controllers.includes('pids')) {
      await removeDir(parent).catch(() => undefined); // best effort: it is empty, and unused either way
      return { driver: undefined, detail: `cgroup v2 at ${place.ownDir} does not delegate the memory and pids controllers (has: ${controllers.join(' ') || 'none'})` };
    }
    if (controllers.includes('cpu')) await writeText(join(parent, 'cpu.weight'), String(parentCpuWeight(maxSandboxes).v2));
    const driver = new CgroupV2Driver(parent, controllers);
    await removeLeftovers(driver, parent);
    return { driver, detail: `cgroup v2 (${controllers.join(', ')}) under ${parent}` };
  } catch (err) {
    return { driver: undefined, detail: `cannot create cgroups: ${(err as Error).message}` };
  }
}

/**
 * Removes the cgroups of an executor that is gone (SIGKILLed: it could not remove them itself),
 * killing anything left in them first. For the process that started it, as the executor made
 * them below the cgroup it inherited. A no-op where there are none.
 */
export async function releaseExecutorCgroups(executorId: string): Promise<void> {
  const place = await placeOf(executorId);
  if (place.version === 1) {
    const parents = Object.fromEntries(Object.entries(place.parents).filter(([, dir]) => existsSync(dir))) as Partial<Record<V1Controller, string>>;
    if (parents.pids) await new CgroupV1Driver(parents).close();
  } else if (place.version === 2 && existsSync(place.parent)) {
    await new CgroupV2Driver(place.parent, []).close();
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
