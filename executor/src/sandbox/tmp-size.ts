import { HostHelper } from './host-helper.js';

/**
 * Resizing a running sandbox's /tmp (a tmpfs bwrap mounted, bwrap-args.ts) to a function's
 * EphemeralStorage.Size when the function is loaded. A warm sandbox boots before anyone knows
 * which function it will run, so its /tmp has the template's size; the function's size is set at
 * load, once, before any of its code runs (a sandbox never runs a second function).
 *
 * Done as the devpts mount is (devpts.ts): a child of the host helper joins the user namespace
 * that owns the sandbox's mount namespace, then that mount namespace, and remounts /tmp there
 * with the new size. The remount keeps nosuid and nodev (MS_REMOUNT without them would clear
 * them) and changes nothing else; a tmpfs cannot be shrunk below what it holds, which a fresh
 * sandbox never does. `PPid` equal to bwrap's pid guards against a recycled pid.
 *
 * One file stays bounded by the sandbox's file size limit (RLIMIT_FSIZE, the template's disk size,
 * bwrap-args.ts): raising a hard limit after boot takes CAP_SYS_RESOURCE, which executors in
 * containers lack, and the limit is what bounds one file in a workspace without a hard size. /tmp
 * as a whole holds EphemeralStorage.Size; a single file past the template's disk size is EFBIG.
 */
const JOB = String.raw`
my ($pid, $bwrap, $SETNS, $MOUNT, $opts, $flags) = @_;
open(my $st, '<', "/proc/$pid/status") or die "the sandbox has exited\n";
my $s = do { local $/; <$st> };
$s =~ /^PPid:\s*(\d+)$/m && $1 == $bwrap or die "process $pid is no longer the sandbox\n";
open(my $mnt, '<', "/proc/$pid/ns/mnt") or die "open mount namespace: $!\n";
my $user = ioctl($mnt, 0xb701, 0);  # NS_GET_USERNS
defined $user or die "NS_GET_USERNS: $!\n";
open(my $userfh, '<&=', $user) or die "fdopen: $!\n";
(stat($userfh))[1] != (stat("/proc/self/ns/user"))[1] or die "the sandbox has no user namespace of its own\n";
(stat($mnt))[1] != (stat("/proc/self/ns/mnt"))[1] or die "the sandbox has no mount namespace of its own\n";
syscall($SETNS, $user + 0, 0x10000000) == 0 or die "setns(user): $!\n";
syscall($SETNS, fileno($mnt), 0x00020000) == 0 or die "setns(mnt): $!\n";
my ($src, $dst, $type) = ('tmpfs', '/tmp', 'tmpfs');
syscall($MOUNT, $src, $dst, $type, $flags + 0, $opts) == 0 or die "remount /tmp: $!\n";
`;

const MS_NOSUID = 0x2;
const MS_NODEV = 0x4;
const MS_REMOUNT = 0x20;

/** setns(2) and mount(2) by architecture (as devpts.ts). */
const SYSCALLS: Record<string, { setns: number; mount: number }> = {
  x64: { setns: 308, mount: 165 },
  arm64: { setns: 268, mount: 40 },
};

const HELPER_TIMEOUT_MS = 10_000;

export class TmpResizeError extends Error {
  constructor(
    readonly sandboxId: string,
    message: string,
  ) {
    super(`sizing /tmp of sandbox ${sandboxId} failed: ${message}`);
    this.name = 'TmpResizeError';
  }
}

let helper: HostHelper | undefined;

/** Sets the size of a running sandbox's /tmp to `sizeMB`. */
export async function resizeTmp(sandbox: { id: string; pid: number; namespacePid: number }, sizeMB: number): Promise<void> {
  const numbers = SYSCALLS[process.arch];
  if (!numbers) throw new TmpResizeError(sandbox.id, `no system call numbers for architecture ${process.arch}`);
  if (!Number.isInteger(sizeMB) || sizeMB < 1) throw new TmpResizeError(sandbox.id, `size must be a positive number of MB; got ${sizeMB}`);
  helper ??= new HostHelper({ tmp_size: JOB });
  const argv = [String(sandbox.namespacePid), String(sandbox.pid), String(numbers.setns), String(numbers.mount), `size=${sizeMB}m`, String(MS_REMOUNT | MS_NOSUID | MS_NODEV)];
  try {
    await helper.run('tmp_size', argv, HELPER_TIMEOUT_MS);
  } catch (err) {
    throw new TmpResizeError(sandbox.id, (err as Error).message.replace(/^tmp_size: /, ''));
  }
}
