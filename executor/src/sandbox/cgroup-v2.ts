import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { CgroupDriver, CgroupLimits, SandboxCgroup } from './cgroup.js';
import { CFS_PERIOD_US, MIB, cfsQuotaUs } from './cgroup.js';
import { checkName, checkPid, makeDir, keyedValue, killAll, procsOf, readOptional, readText, removeDir, waitFor, writeOptional, writeText } from './cgroupfs.js';

/**
 * cgroup v2: one directory per sandbox under the executor's parent cgroup, whose
 * cgroup.subtree_control enables `controllers` (see `prepareV2Parent`). Limits of a controller
 * that is not enabled are not written (tests run the driver on a hierarchy with none).
 */
export class CgroupV2Driver implements CgroupDriver {
  readonly version = 'v2';

  constructor(
    private readonly parent: string,
    private readonly controllers: readonly string[],
  ) {}

  async create(name: string, limits: CgroupLimits): Promise<SandboxCgroup> {
    const dir = join(this.parent, checkName(name));
    await makeDir(dir);
    const cg = new CgroupV2(dir);
    if (this.controllers.includes('memory')) {
      await cg.setMemoryLimit(limits.memoryMB);
      // No swap, and an OOM kill takes the whole sandbox: a runner or session left without the
      // process the kernel chose would be in a state nobody asked for.
      await writeOptional(join(dir, 'memory.swap.max'), '0');
      await writeOptional(join(dir, 'memory.oom.group'), '1');
    }
    if (this.controllers.includes('pids')) await writeText(join(dir, 'pids.max'), String(limits.maxProcesses));
    if (this.controllers.includes('cpu')) await writeText(join(dir, 'cpu.max'), `${cfsQuotaUs(limits.cpus)} ${CFS_PERIOD_US}`);
    return cg;
  }

  async remove(name: string): Promise<void> {
    const dir = join(this.parent, checkName(name));
    await killCgroupV2(dir);
    await removeDir(dir);
  }

  async close(): Promise<void> {
    for (const entry of await readdir(this.parent, { withFileTypes: true }).catch(() => [])) {
      if (entry.isDirectory()) await this.remove(entry.name);
    }
    await removeDir(this.parent);
  }
}

/**
 * Kills every process in a v2 cgroup: cgroup.kill (Linux 5.14+) kills the whole group at once,
 * forks included; on older kernels the group is frozen, killed and thawed until empty.
 */
export async function killCgroupV2(dir: string): Promise<void> {
  const exists = (await readOptional(join(dir, 'cgroup.procs'))) !== undefined;
  if (!exists) return;
  const killed = await writeOptional(join(dir, 'cgroup.kill'), '1');
  const emptied = await waitFor(async () => {
    const pids = await procsOf(dir);
    if (pids.length > 0 && !killed) {
      await writeText(join(dir, 'cgroup.freeze'), '1');
      killAll(await procsOf(dir));
      await writeText(join(dir, 'cgroup.freeze'), '0');
    }
    return pids.length === 0;
  }, 2000);
  if (!emptied) throw new Error(`processes are left in cgroup ${dir} after SIGKILL`);
}

class CgroupV2 implements SandboxCgroup {
  readonly procsFiles: readonly string[];

  constructor(private readonly dir: string) {
    this.procsFiles = [join(dir, 'cgroup.procs')];
  }

  addProcess(pid: number): Promise<void> {
    return writeText(join(this.dir, 'cgroup.procs'), String(checkPid(pid)));
  }

  setMemoryLimit(memoryMB: number): Promise<void> {
    return writeText(join(this.dir, 'memory.max'), String(memoryMB * MIB));
  }

  async oomKills(): Promise<number> {
    return keyedValue(await readOptional(join(this.dir, 'memory.events')), 'oom_kill');
  }

  async peakMemoryBytes(): Promise<number | undefined> {
    // memory.peak arrived in Linux 5.19.
    const text = await readOptional(join(this.dir, 'memory.peak'));
    return text === undefined ? undefined : Number(text);
  }

  /** cgroup.freeze exists in every non-root v2 cgroup (Linux 5.2+), controllers or not. */
  readonly canFreeze = true;

  async freeze(): Promise<void> {
    await writeText(join(this.dir, 'cgroup.freeze'), '1');
    const frozen = await waitFor(async () => keyedValue(await readOptional(join(this.dir, 'cgroup.events')), 'frozen') === 1, 10_000);
    if (!frozen) throw new Error(`cgroup ${this.dir} did not finish freezing within 10 s`);
  }

  thaw(): Promise<void> {
    return writeText(join(this.dir, 'cgroup.freeze'), '0');
  }

  processes(): Promise<number[]> {
    return procsOf(this.dir);
  }

  async memoryLimitMB(): Promise<number> {
    const text = await readText(join(this.dir, 'memory.max'));
    return text === 'max' ? Infinity : Number(text) / MIB;
  }
}

/**
 * Makes `own` (the executor's cgroup) able to hold sandbox cgroups with `wanted` controllers
 * and returns the directory of a new `parentName` below it with them enabled.
 *
 * cgroup v2's "no internal processes" rule: a cgroup other than the root can enable
 * controllers for its children only while it holds no process itself. In a container with a
 * delegated subtree the executor usually sits in that cgroup, so when enabling fails with
 * EBUSY its processes move to a leaf `kiln-leaf` first (as systemd's init.scope does). An
 * executor whose own cgroup is such a leaf uses the leaf's parent, so executors that share a
 * cgroup (the local platform's, children of one control plane) do not nest leaves.
 */
export async function prepareV2Parent(own: string, parentName: string, wanted: readonly string[]): Promise<{ parent: string; controllers: string[] }> {
  const base = own.endsWith(`/${LEAF}`) ? own.slice(0, -LEAF.length - 1) : own;
  const available = ((await readOptional(join(base, 'cgroup.controllers'))) ?? '').split(' ').filter(Boolean);
  const controllers = wanted.filter((c) => available.includes(c));
  const enable = controllers.map((c) => `+${c}`).join(' ');
  if (enable) {
    try {
      await writeText(join(base, 'cgroup.subtree_control'), enable);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EBUSY') throw err;
      await makeDir(join(base, LEAF), true);
      // Each write moves one process; a process started meanwhile is caught by the next pass.
      for (let pass = 0; pass < 5; pass++) {
        const pids = await procsOf(base);
        if (pids.length === 0) break;
        for (const pid of pids) await writeText(join(base, LEAF, 'cgroup.procs'), String(pid)).catch(() => undefined /* exited meanwhile */);
      }
      await writeText(join(base, 'cgroup.subtree_control'), enable);
    }
  }
  const parent = join(base, checkName(parentName));
  await makeDir(parent, true);
  if (enable) await writeText(join(parent, 'cgroup.subtree_control'), enable);
  return { parent, controllers };
}

const LEAF = 'kiln-leaf';
