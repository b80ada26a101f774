import type { BootContext, BootStep } from './boot-step.js';
import { SandboxMount } from './sandbox-mount.js';

/**
 * Ptys one sandbox may hold at once (devpts `max`). kernel.pty.max is one pool for the whole
 * host (4096 by default, 1024 of them reserved for the host's own devpts), so without a cap one
 * sandbox could take every pty the other sandboxes' terminals need.
 */
export const MAX_PTYS = 64;

/**
 * Mount options: a private instance (`newinstance`), whose ptmx anyone in the sandbox may open;
 * slaves belong to the sandbox user who opened them (0620, no `gid=`: there is no tty group).
 * MS_NOSUID | MS_NOEXEC, not MS_NODEV: the ptys are device nodes, nodev would refuse to open them.
 */
const OPTIONS = `newinstance,ptmxmode=0666,mode=0620,max=${MAX_PTYS}`;
const MS_NOSUID = 0x2;
const MS_NOEXEC = 0x8;

export class DevptsMountError extends Error {
  constructor(
    readonly sandboxId: string,
    message: string,
  ) {
    super(`mounting /dev/pts in sandbox ${sandboxId} failed: ${message}`);
    this.name = 'DevptsMountError';
  }
}

/**
 * Mounted by the host helper in the sandbox's namespaces (sandbox-mount.ts), once bwrap has
 * parked the sandbox: bwrap writes --info-fd right after clone(), while its child still builds
 * the mount tree and has not yet pivoted into the new root, and a mount made then would land in
 * the old tree and be thrown away (or, worse, hidden under bwrap's /dev tmpfs). The child drops
 * its last capability (CapEff 0) just before it blocks, after every mount and pivot_root, so that
 * is the signal. Joining the mount namespace puts the helper at the sandbox's root, so /dev/pts
 * is the sandbox's.
 */
const DEVPTS = new SandboxMount('devpts', { source: 'devpts', target: '/dev/pts', type: 'devpts', waitForBoot: true });

/**
 * A boot step that gives the sandbox a private devpts instance at /dev/pts (bwrap-args.ts makes
 * the directory and points /dev/ptmx at pts/ptmx). Its ptys are the sandbox's alone: it sees
 * none of the host's or another sandbox's, and they go away with its mount namespace, so
 * `release` has nothing to undo. It waits for bwrap to finish building the sandbox; the other
 * steps, which only need its namespaces, run meanwhile.
 */
export function devptsStep(): BootStep {
  return {
    name: 'devpts',
    async attach(ctx: BootContext): Promise<void> {
      try {
        await DEVPTS.mount(ctx.namespacePid, ctx.bwrapPid, OPTIONS, MS_NOSUID | MS_NOEXEC);
      } catch (err) {
        throw new DevptsMountError(ctx.spec.id, (err as Error).message);
      }
    },
    release(): Promise<void> {
      return Promise.resolve();
    },
  };
}
