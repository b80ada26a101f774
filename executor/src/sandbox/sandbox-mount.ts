import { HostHelper } from './host-helper.js';

/**
 * One mount(2) made inside a running sandbox's mount namespace, for the boot steps and changes
 * that need one after bwrap started the sandbox (devpts.ts: a private /dev/pts; tmp-size.ts: /tmp
 * resized to a function's EphemeralStorage). The executor's host helper (host-helper.ts) forks a
 * child per call that, as the executor's own user:
 * 1. optionally waits until bwrap has parked the sandbox on --block-fd (`waitForBoot`; see
 *    devpts.ts for why a mount made earlier would be lost), checking each time that the process
 *    is still bwrap's child (`PPid`: never a recycled pid, never a stranger's namespace);
 * 2. joins the user namespace that owns the sandbox's mount namespace (NS_GET_USERNS, not
 *    /proc/pid/ns/user: with `--disable-userns` bwrap nests a second user namespace that has no
 *    power over the mounts), then the mount namespace, refusing namespaces it already is in;
 * 3. calls mount(source, target, type, flags, options).
 * Why perl: the mount must be made by a process that joined the namespace and has not called
 * execve since (a non-root executor's capabilities there end at its next execve); perl-base is
 * Essential in Debian and can make the system calls itself.
 */

/** setns(2) and mount(2) by architecture; perl-base has `syscall` but not the numbers (syscall.ph). */
const SYSCALLS: Record<string, { setns: number; mount: number }> = {
  x64: { setns: 308, mount: 165 },
  arm64: { setns: 268, mount: 40 },
};

const HELPER_TIMEOUT_MS = 10_000;

function job(waitForBoot: boolean, source: string, target: string, type: string): string {
  const check = waitForBoot
    ? String.raw`
while (1) {
  open(my $st, '<', "/proc/$pid/status") or die "sandbox exited before it was ready\n";
  my $s = do { local $/; <$st> };
  $s =~ /^PPid:\s*(\d+)$/m && $1 == $bwrap or die "process $pid is no longer the sandbox\n";
  $s !~ /^State:\s*Z/m or die "sandbox exited before it was ready\n";
  last if $s =~ /^CapEff:\s*0+$/m;
  select(undef, undef, undef, 0.001);
}`
    : String.raw`
open(my $st, '<', "/proc/$pid/status") or die "the sandbox has exited\n";
my $s = do { local $/; <$st> };
$s =~ /^PPid:\s*(\d+)$/m && $1 == $bwrap or die "process $pid is no longer the sandbox\n";`;
  return String.raw`
my ($pid, $bwrap, $SETNS, $MOUNT, $opts, $flags, $at) = @_;${check}
open(my $mnt, '<', "/proc/$pid/ns/mnt") or die "open mount namespace: $!\n";
my $user = ioctl($mnt, 0xb701, 0);  # NS_GET_USERNS
defined $user or die "NS_GET_USERNS: $!\n";
open(my $userfh, '<&=', $user) or die "fdopen: $!\n";
(stat($userfh))[1] != (stat("/proc/self/ns/user"))[1] or die "the sandbox has no user namespace of its own\n";
(stat($mnt))[1] != (stat("/proc/self/ns/mnt"))[1] or die "the sandbox has no mount namespace of its own\n";
syscall($SETNS, $user + 0, 0x10000000) == 0 or die "setns(user): $!\n";
syscall($SETNS, fileno($mnt), 0x00020000) == 0 or die "setns(mnt): $!\n";
my ($src, $dst, $type) = ('${source}', (defined $at && $at ne '') ? $at : '${target}', '${type}');
syscall($MOUNT, $src, $dst, $type, $flags + 0, $opts) == 0 or die "mount ${target}: $!\n";
`;
}

/** A mount of one kind (source, target and type fixed), made in any sandbox on demand. */
export class SandboxMount {
  private helper: HostHelper | undefined;

  constructor(
    private readonly name: string,
    private readonly what: { source: string; target: string; type: string; waitForBoot: boolean },
  ) {}

  /**
   * Mounts in the sandbox whose namespaces `namespacePid` holds (a child of `bwrapPid`); rejects
   * with the helper's reason (an Error whose message names no job).
   */
  /** `at`: a target other than the one fixed at construction (a checked sandbox path). */
  async mount(namespacePid: number, bwrapPid: number, options: string, flags: number, at = ''): Promise<void> {
    const numbers = SYSCALLS[process.arch];
    if (!numbers) throw new Error(`no system call numbers for architecture ${process.arch}`);
    this.helper ??= new HostHelper({ [this.name]: job(this.what.waitForBoot, this.what.source, this.what.target, this.what.type) });
    try {
      await this.helper.run(this.name, [String(namespacePid), String(bwrapPid), String(numbers.setns), String(numbers.mount), options, String(flags), at], HELPER_TIMEOUT_MS);
    } catch (err) {
      throw new Error((err as Error).message.replace(new RegExp(`^${this.name}: `), ''));
    }
  }
}
