import { seccompProgram } from './seccomp.js';

/**
 * How processes started later in a live sandbox (session processes, terminals: they enter it
 * with `nsenter`, see process/command.ts) get the sandbox's seccomp filter. A filter is inherited
 * only from the process that forks, so these do not get bwrap's: something on their way in must
 * install it.
 *
 * The loader is a few lines of Perl, because `perl` is in every executor image without adding
 * anything (perl-base is "Essential" in Debian, unlike python3, which the nodejs and provided
 * images lack) and its `syscall` builtin can make prctl(2) with a pointer to the program; Node
 * cannot, and no util-linux tool of bookworm loads a filter. It runs on the host side, BEFORE
 * nsenter, so the process is filtered before it exists in the sandbox's pid namespace: a loader
 * run after nsenter would be, for a few milliseconds, an unfiltered process of the sandbox user
 * that code in the sandbox could ptrace and make do anything. nsenter then runs under the
 * filter, which is why the filter allows setns and chroot (without capabilities in the target
 * namespaces, which nothing in a sandbox has, the kernel refuses them anyway).
 *
 * It fails closed: if either prctl fails, it dies with a message and never execs the command.
 */
const SCRIPT = [
  'my ($prctl, $hex, $n) = splice(@ARGV, 0, 3);',
  // First into the sandbox's cgroup (one write per v1 hierarchy): everything this process
  // executes, and all it forks, is then bounded by it (see `seccompLoaderArgv`).
  'for my $f (splice(@ARGV, 0, $n)) { open(my $fh, ">", $f) or die "kiln launcher: open $f: $!\\n"; print $fh "$$\\n"; close($fh) or die "kiln launcher: join $f: $!\\n"; }',
  "my $filter = pack('H*', $hex);",
  "my $fprog = pack('S x6 P', length($filter) / 8, $filter);",
  // PR_SET_NO_NEW_PRIVS (setpriv has set it already; the kernel demands it for a filter).
  'syscall($prctl, 38, 1, 0, 0, 0) == 0 or die "kiln seccomp loader: PR_SET_NO_NEW_PRIVS: $!\\n";',
  // PR_SET_SECCOMP, SECCOMP_MODE_FILTER
  'syscall($prctl, 22, 2, $fprog) == 0 or die "kiln seccomp loader: PR_SET_SECCOMP: $!\\n";',
  'exec { $ARGV[0] } @ARGV or die "kiln seccomp loader: exec $ARGV[0]: $!\\n";',
].join(' ');

/** prctl(2)'s number on the executor's architecture (sandboxes run on the same one). */
const PRCTL: Partial<Record<string, number>> = { x64: 157, arm64: 167 };

export class SeccompUnsupportedError extends Error {
  constructor(arch: string) {
    super(`no seccomp filter for architecture ${arch}; Kiln sandboxes run on x86_64 and aarch64`);
    this.name = 'SeccompUnsupportedError';
  }
}

let prefix: string[] | undefined;

/**
 * The argv prefix that moves the launcher into the sandbox's cgroup (`procsFiles`, its
 * cgroup.procs files; none where the executor has no cgroups), loads the filter, then execs the
 * argv that follows it. Both happen in this one process before nsenter forks the command into
 * the sandbox, so the command is bounded and filtered from its first instruction; moving its
 * pid after spawn would race with that fork. Any failure ends the launcher before the command
 * runs.
 */
export function seccompLoaderArgv(procsFiles: readonly string[] = []): string[] {
  if (!prefix) {
    const prctl = PRCTL[process.arch];
    if (prctl === undefined) throw new SeccompUnsupportedError(process.arch);
    prefix = ['/usr/bin/perl', '-e', SCRIPT, '--', String(prctl), seccompProgram().toString('hex')];
  }
  return [...prefix, String(procsFiles.length), ...procsFiles];
}
