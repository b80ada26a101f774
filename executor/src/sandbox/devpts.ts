import type { BootContext, BootStep } from './boot-step.js';
import { HostHelper } from './host-helper.js';

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

/** setns(2) and mount(2) by architecture; perl-base has `syscall` but not the numbers (syscall.ph). */
const SYSCALLS: Record<string, { setns: number; mount: number }> = {
  x64: { setns: 308, mount: 165 },
  arm64: { setns: 268, mount: 40 },
};

const HELPER_TIMEOUT_MS = 10_000;

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
 * The job that mounts the devpts instance, run by the executor's host helper (host-helper.ts) as
 * the executor's own user, in a child it forks. Why perl: the mount must be made by a process
 * that joined the sandbox's user namespace and has not called execve since. A non-root executor (user kiln in a container) has capabilities in that
 * namespace only until its next execve, so `nsenter -U … mount` runs mount(8) without any (and
 * mount(8) refuses options to a non-root uid anyway); uid 0, which would keep them, is not
 * mapped in the sandbox. perl-base is Essential in Debian, so every image has it, and it can
 * make the system calls itself, and the helper's fork costs far less than a spawn from Node.
 *
 * Steps, with the arguments = namespace pid, bwrap pid, SYS_setns, SYS_mount, options, flags:
 * 1. Wait until bwrap has parked the sandbox on --block-fd. bwrap writes --info-fd right after
 *    clone(), while its child is still building the mount tree and has not yet pivoted into the
 *    new root; a mount made then would land in the old tree and be thrown away (or, worse,
 *    hidden under bwrap's /dev tmpfs). The child drops its last capability (CapEff 0) just
 *    before it blocks, after every mount and pivot_root, so that is the signal. `PPid` equal to
 *    bwrap's pid guards against a recycled pid: we never mount into a stranger's namespace.
 * 2. Join the user namespace that owns the sandbox's mount namespace (NS_GET_USERNS, not
 *    /proc/pid/ns/user: with `--disable-userns` bwrap nests a second user namespace that has no
 *    power over the mounts), then the mount namespace itself. Joining it puts the helper at the
 *    sandbox's root, so /dev/pts is the sandbox's. Refuse namespaces the helper already is in.
 * 3. mount("devpts", "/dev/pts", "devpts", flags, options).
 */
const JOB = String.raw`
my ($pid, $bwrap, $SETNS, $MOUNT, $opts, $flags) = @_;
while (1) {
  open(my $st, '<', "/proc/$pid/status") or die "sandbox exited before it was ready\n";
  my $s = do { local $/; <$st> };
  $s =~ /^PPid:\s*(\d+)$/m && $1 == $bwrap or die "process $pid is no longer the sandbox\n";
  $s !~ /^State:\s*Z/m or die "sandbox exited before it was ready\n";
  last if $s =~ /^CapEff:\s*0+$/m;
  select(undef, undef, undef, 0.001);
}
open(my $mnt, '<', "/proc/$pid/ns/mnt") or die "open mount namespace: $!\n";
my $user = ioctl($mnt, 0xb701, 0);  # NS_GET_USERNS
defined $user or die "NS_GET_USERNS: $!\n";
open(my $userfh, '<&=', $user) or die "fdopen: $!\n";
(stat($userfh))[1] != (stat("/proc/self/ns/user"))[1] or die "the sandbox has no user namespace of its own\n";
(stat($mnt))[1] != (stat("/proc/self/ns/mnt"))[1] or die "the sandbox has no mount namespace of its own\n";
syscall($SETNS, $user + 0, 0x10000000) == 0 or die "setns(user): $!\n";
syscall($SETNS, fileno($mnt), 0x00020000) == 0 or die "setns(mnt): $!\n";
my ($src, $dst, $type) = ('devpts', '/dev/pts', 'devpts');
syscall($MOUNT, $src, $dst, $type, $flags + 0, $opts) == 0 or die "mount: $!\n";
`;

/**
 * A boot step that gives the sandbox a private devpts instance at /dev/pts (bwrap-args.ts makes
 * the directory and points /dev/ptmx at pts/ptmx). Its ptys are the sandbox's alone: it sees
 * none of the host's or another sandbox's, and they go away with its mount namespace, so
 * `release` has nothing to undo. It waits for bwrap to finish building the sandbox; the other
 * steps, which only need its namespaces, run meanwhile.
 */
export function devptsStep(): BootStep {
  const numbers = SYSCALLS[process.arch];
  const helper = new HostHelper({ devpts: JOB });
  return {
    name: 'devpts',
    async attach(ctx: BootContext): Promise<void> {
      if (!numbers) throw new DevptsMountError(ctx.spec.id, `no system call numbers for architecture ${process.arch}`);
      const argv = [String(ctx.namespacePid), String(ctx.bwrapPid), String(numbers.setns), String(numbers.mount), OPTIONS, String(MS_NOSUID | MS_NOEXEC)];
      try {
        await helper.run('devpts', argv, HELPER_TIMEOUT_MS);
      } catch (err) {
        throw new DevptsMountError(ctx.spec.id, (err as Error).message.replace(/^devpts: /, ''));
      }
    },
    release(): Promise<void> {
      return Promise.resolve();
    },
  };
}
