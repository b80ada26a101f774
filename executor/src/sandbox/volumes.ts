import { readFile } from 'node:fs/promises';
import { AgentError, InvalidArgumentError } from '../errors.js';
import { ErrorCode } from '@kiln/proto/executor/errors';
import { HostHelper } from './host-helper.js';

/** What the control plane asks for: a volume by (tenant, id), never a host path. */
export interface VolumeRequest {
  tenantKey: string;
  volumeId: string;
  sizeMB: number;
  /** Where it appears in the sandbox. */
  path: string;
  readOnly: boolean;
  /**
   * Synced mode (synced-volumes.ts): no image on this host; a tmpfs of `sizeMB` in the sandbox
   * that the control plane fills and packs through the Files service.
   */
  synced?: boolean;
}

/**
 * A volume ready to mount: the mount point of its image on the host (bound), or for a synced
 * volume a tmpfs of `syncedMB` (no host directory at all), and where it goes in the sandbox.
 */
export interface VolumeBind {
  hostDir: string;
  path: string;
  readOnly: boolean;
  syncedMB?: number;
}

export const TENANT_KEY = /^[0-9a-f]{32}$/;
export const VOLUME_ID = /^vol_[0-9a-f]{32}$/;
/** Sandbox paths a volume may take: under /mnt/, plain names only (the control plane checks the same). */
const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const MAX_VOLUMES_PER_SANDBOX = 8;
const MAX_SIZE_MB = 1 << 20;

/** The executor cannot host volumes (no volume root, or no loop mounts): 400 VolumesUnsupported. */
export class VolumesUnsupportedError extends AgentError {
  constructor(detail: string) {
    super(ErrorCode.ERROR_CODE_VOLUMES_UNSUPPORTED, `this executor cannot mount volumes: ${detail}`, { detail });
  }
}

/** Why a sandbox path is not one a volume may take, or undefined when it may. */
export function volumePathProblem(path: string): string | undefined {
  if (typeof path !== 'string' || path.length > 256) return 'must be a string of at most 256 characters';
  const parts = path.split('/');
  if (parts[0] !== '' || parts[1] !== 'mnt') return 'must be absolute and under /mnt/ (e.g. /mnt/data)';
  const rest = parts.slice(2);
  if (rest.length < 1 || rest.length > 4) return 'must be /mnt/ followed by one to four names';
  for (const seg of rest) if (!SEGMENT.test(seg) || seg === '..') return `segment "${seg.slice(0, 70)}" must be a plain name (letters, digits, ".", "_", "-", not starting with "." or "-"; no empty, "." or ".." segments)`;
  return undefined;
}

/** Checks a sandbox's volume list as the control plane should have: the executor believes none of it. */
export function checkVolumeRequests(volumes: readonly VolumeRequest[]): void {
  if (volumes.length > MAX_VOLUMES_PER_SANDBOX) throw new InvalidArgumentError(`at most ${MAX_VOLUMES_PER_SANDBOX} volumes per sandbox; got ${volumes.length}`, {});
  const paths: string[] = [];
  const ids = new Set<string>();
  for (const v of volumes) {
    if (!TENANT_KEY.test(v.tenantKey)) throw new InvalidArgumentError('volume tenant key must be 32 lowercase hex digits', {});
    if (!VOLUME_ID.test(v.volumeId)) throw new InvalidArgumentError('volume id must be vol_ and 32 lowercase hex digits', {});
    if (!Number.isInteger(v.sizeMB) || v.sizeMB < 1 || v.sizeMB > MAX_SIZE_MB) throw new InvalidArgumentError(`volume size must be 1..${MAX_SIZE_MB} MB`, {});
    const problem = volumePathProblem(v.path);
    if (problem) throw new InvalidArgumentError(`volume path ${JSON.stringify(v.path.slice(0, 100))} ${problem}`, {});
    // One volume, one place: two mounts of the same image in one sandbox gain nothing.
    if (ids.has(v.volumeId)) throw new InvalidArgumentError(`volume ${v.volumeId} is listed twice`, {});
    ids.add(v.volumeId);
    for (const p of paths) {
      if (p === v.path || p.startsWith(`${v.path}/`) || v.path.startsWith(`${p}/`)) throw new InvalidArgumentError(`volume paths ${p} and ${v.path} overlap`, {});
    }
    paths.push(v.path);
  }
}

/**
 * What the volume jobs share: the checks of a volume's names, and `realdir`, which makes each
 * directory from the root down (root, 0711) and checks it with lstat: a real directory, owned by
 * the helper's uid, not a link; it returns the directory's device.
 */
const PRELUDE = String.raw`
use Fcntl qw(:flock O_RDWR O_RDONLY O_CREAT O_NOFOLLOW);
sub volume_names {
  my ($tenant, $vol) = @_;
  $tenant =~ /^[0-9a-f]{32}$/ or die "bad tenant key\n";
  $vol =~ /^vol_[0-9a-f]{32}$/ or die "bad volume id\n";
}
sub realdir {
  my ($p) = @_;
  if (!lstat($p)) { mkdir($p, 0711) or $!{EEXIST} or die "mkdir $p: $!\n"; lstat($p) or die "lstat $p: $!\n"; }
  -l _ and die "$p is a symbolic link; refusing it\n";
  -d _ or die "$p is not a directory\n";
  (lstat(_))[4] == $> or die "$p is not owned by the executor's uid\n";
  return (lstat(_))[0];
}
sub run {
  open(my $out, '-|', '/bin/sh', '-c', 'exec 2>&1; exec "$@"', 'sh', @_) or die "sh: $!\n";
  my $text = do { local $/; <$out> } // '';
  close($out) or die "$_[0]: " . (($text =~ s/\s+$//r) || ('exit status ' . ($? >> 8))) . "\n";
}
`;

/**
 * The host helper's job: makes (first time) and mounts one volume, under an exclusive flock of
 * the volume's own lock file, so executors on one host that boot sandboxes with the same volume
 * at once neither make two filesystems nor mount one image through two loop devices (ext4
 * mounted twice from different devices corrupts). Each directory from the root down is made by
 * the helper (root, 0711) and checked with lstat: a real directory, owned by root, not a link.
 * A sandbox never sees any of them (it sees the inside of the image's root), so nothing it does
 * can put a link there; the checks are for a host where something else could.
 * Mounted nosuid,nodev; the image's root is 0777 with a default ACL of rwx for everyone, so
 * files made by one session (each sandbox has its own host uid) can be changed by the next.
 */
const JOB = String.raw`
my ($root, $tenant, $vol, $size_mb, $SETXATTR) = @_;
volume_names($tenant, $vol);
$size_mb =~ /^[0-9]+$/ && $size_mb > 0 or die "bad size\n";
realdir($root);
realdir("$root/$tenant");
my $dir_dev = realdir("$root/$tenant/$vol");
sysopen(my $lock, "$root/$tenant/$vol/lock", O_RDWR | O_CREAT | O_NOFOLLOW, 0600) or die "lock: $!\n";
flock($lock, LOCK_EX) or die "flock: $!\n";
my $mnt = "$root/$tenant/$vol/mnt";
my $mnt_dev = realdir($mnt);
return if $mnt_dev != $dir_dev;  # mounted already (by this or another executor of the host)
my $image = "$root/$tenant/$vol/image";
if (!lstat($image)) {
  my $part = "$image.partial";
  unlink($part);
  sysopen(my $fh, $part, O_RDWR | O_CREAT | O_NOFOLLOW, 0600) or die "image: $!\n";
  truncate($fh, $size_mb * 1024 * 1024) or die "truncate: $!\n";
  close($fh);
  run('mkfs.ext4', '-q', '-F', '-O', '^has_journal', '-m', '0', '-i', '8192', '-E', 'lazy_itable_init=1,nodiscard', $part);
  run('debugfs', '-w', '-R', 'rmdir lost+found', $part);
  rename($part, $image) or die "rename: $!\n";
} else {
  -l _ and die "$image is a symbolic link; refusing it\n";
  -f _ or die "$image is not a file\n";
}
run('mount', '-o', 'loop,nosuid,nodev', '--', $image, $mnt);
# The image's root: every sandbox uid may write, and what it makes stays writable by the others.
chmod(0777, $mnt) or die "chmod: $!\n";
my ($p, $n) = ($mnt, 'system.posix_acl_default');
my $v = pack('V(vvV)3', 2, 1, 7, 0xffffffff, 4, 7, 0xffffffff, 0x20, 7, 0xffffffff);
syscall($SETXATTR, $p, $n, $v, length($v), 0) == 0 or die "setxattr(default ACL): $!\n";
`;

/**
 * Inline in the helper (host-helper.ts): a shared flock on the volume's `users` file, kept open
 * in `%held` under `key` (sandbox and volume) until `volume_release`. The kernel is the
 * volume's use count on the host: every executor's helper holds one such lock per sandbox that
 * binds the volume, taken before the volume is mounted for it and dropped once the sandbox's
 * processes are all gone, and a helper that dies (with its executor) drops its own. Never
 * blocks: while an unmount holds the file exclusively, it answers `busy` and the executor asks again.
 */
const HOLD = String.raw`
my ($root, $tenant, $vol, $key) = @_;
volume_names($tenant, $vol);
return if $held{$key};
realdir($root);
realdir("$root/$tenant");
realdir("$root/$tenant/$vol");
sysopen(my $fh, "$root/$tenant/$vol/users", O_RDONLY | O_CREAT | O_NOFOLLOW, 0600) or die "users: $!\n";
flock($fh, LOCK_SH | LOCK_NB) or die($!{EWOULDBLOCK} ? "busy\n" : "flock: $!\n");
$held{$key} = $fh;
`;

const RELEASE = String.raw`
my ($key) = @_;
delete $held{$key};
`;

/**
 * Unmounts a volume no sandbox on the host holds: under the volume's lock (no mount meanwhile),
 * an exclusive flock of its `users` file taken without waiting succeeds only when no helper
 * holds a shared one, and no mount namespace but the host's has the filesystem. Plain umount
 * (not lazy): something of the host's still inside it answers EBUSY and the volume stays
 * mounted. The image stays; the next sandbox mounts it again.
 */
const UNMOUNT = String.raw`
my ($root, $tenant, $vol) = @_;
volume_names($tenant, $vol);
my $dir = "$root/$tenant/$vol";
lstat($dir) or return;  # deleted meanwhile
-l _ and die "$dir is a symbolic link; refusing it\n";
-d _ or die "$dir is not a directory\n";
my $dir_dev = (lstat(_))[0];
sysopen(my $lock, "$dir/lock", O_RDWR | O_NOFOLLOW) or ($!{ENOENT} ? return : die "lock: $!\n");
flock($lock, LOCK_EX) or die "flock: $!\n";
sysopen(my $users, "$dir/users", O_RDONLY | O_CREAT | O_NOFOLLOW, 0600) or die "users: $!\n";
# A helper child forked just before a release keeps a copy of the released lock until it has
# run its first statement (host-helper.ts): a few short tries, so such a copy does not count.
my $free;
for my $try (1 .. 4) {
  $free = flock($users, LOCK_EX | LOCK_NB) and last;
  $!{EWOULDBLOCK} or die "flock users: $!\n";
  select(undef, undef, undef, 0.025);
}
return unless $free;
my $mnt = "$dir/mnt";
lstat($mnt) or return;
-l _ and die "$mnt is a symbolic link; refusing it\n";
my $dev = (lstat(_))[0];
return if $dev == $dir_dev;  # not mounted
# Second check, the kernel's own: a mount namespace other than the host's with this filesystem
# mounted (a sandbox's bind) keeps it, whoever should have held the lock (a helper that died
# while its executor lived on, an executor of an older Kiln that took none).
my $id = (($dev >> 8) & 0xfff | (($dev >> 32) & ~0xfff)) . ':' . (($dev & 0xff) | (($dev >> 12) & ~0xff));
my $self = readlink('/proc/self/ns/mnt') // die "ns: $!\n";
my %seen = ($self => 1);
opendir(my $proc, '/proc') or die "/proc: $!\n";
for my $pid (grep { /^[0-9]+$/ } readdir($proc)) {
  my $ns = readlink("/proc/$pid/ns/mnt") // next;
  next if $seen{$ns}++;
  open(my $mi, '<', "/proc/$pid/mountinfo") or next;
  while (my $line = <$mi>) { return if (split(/ /, $line))[2] eq $id; }
}
run('umount', '--', $mnt);
`;

/** setxattr(2) by architecture. */
const SETXATTR: Record<string, number> = { x64: 188, arm64: 5 };
const JOB_TIMEOUT_MS = 120_000;

/**
 * The volumes of one host: `<root>/<tenantKey>/<volumeId>/{image,mnt,lock}`. An ext4 image per
 * volume, made on its first mount with the volume's size and loop-mounted at `mnt` while any
 * sandbox of the host binds it (HOLD says who counts them), and unmounted `idleUnmountMs` after
 * the last one of this executor's sandboxes that used it is gone, unless another holds it then
 * (deleting the volume unmounts it too, in the control plane: control-plane/src/volumes/host.ts).
 * The root is the same for every executor of the host (KILN_VOLUME_DIR), outside their data
 * dirs, which are deleted when they stop.
 */
export class VolumeHost {
  private readonly helper = new HostHelper({ volume_mount: JOB, volume_unmount: UNMOUNT }, { prelude: PRELUDE, inline: { volume_hold: HOLD, volume_release: RELEASE } });
  /** The volumes each sandbox holds (the helper's `%held` keys are `sandbox/volume`). */
  private readonly holds = new Map<string, VolumeRequest[]>();
  /** Volumes on their idle clock: unmounted when it runs out (unless held again by then). */
  private readonly idle = new Map<string, { timer: NodeJS.Timeout; v: Pick<VolumeRequest, 'tenantKey' | 'volumeId'> }>();

  constructor(
    private readonly root: string | undefined,
    /** Why volumes cannot be hosted here, or undefined when they can. */
    private readonly unsupported: string | undefined,
    /** How long a volume no sandbox uses stays mounted (a quick re-create reuses the mount). */
    private readonly idleUnmountMs = 10_000,
  ) {}

  /**
   * Counts the sandbox as a user of each volume on the host (before its mount: from then on no
   * executor unmounts it), mounts it (first: makes it) and returns what bwrap binds. The caller
   * calls `release(sandboxId)` once the sandbox is gone, whether this succeeded or not.
   */
  async prepare(sandboxId: string, volumes: readonly VolumeRequest[]): Promise<VolumeBind[]> {
    if (volumes.length === 0) return [];
    checkVolumeRequests(volumes);
    if (this.unsupported !== undefined || this.root === undefined) throw new VolumesUnsupportedError(this.unsupported ?? 'no volume root (KILN_VOLUME_DIR)');
    const setxattr = SETXATTR[process.arch];
    if (setxattr === undefined) throw new VolumesUnsupportedError(`no setxattr number for architecture ${process.arch}`);
    const binds: VolumeBind[] = [];
    const held: VolumeRequest[] = [];
    this.holds.set(sandboxId, held);
    for (const v of volumes) {
      try {
        await this.hold(sandboxId, v);
        held.push(v);
        await this.helper.run('volume_mount', [this.root, v.tenantKey, v.volumeId, String(v.sizeMB), String(setxattr)], JOB_TIMEOUT_MS);
      } catch (err) {
        throw new AgentError(ErrorCode.ERROR_CODE_INTERNAL, `mounting volume ${v.volumeId} failed: ${(err as Error).message}`, { volumeId: v.volumeId });
      }
      binds.push({ hostDir: `${this.root}/${v.tenantKey}/${v.volumeId}/mnt`, path: v.path, readOnly: v.readOnly });
    }
    return binds;
  }

  /**
   * The sandbox no longer uses its volumes (its processes, and so its mount namespace, are gone):
   * drops its holds, and tries to unmount each volume after idleUnmountMs.
   */
  async release(sandboxId: string): Promise<void> {
    const held = this.holds.get(sandboxId);
    if (!held) return;
    this.holds.delete(sandboxId);
    for (const v of held) {
      try {
        await this.helper.run('volume_release', [`${sandboxId}/${v.volumeId}`], JOB_TIMEOUT_MS);
      } catch (err) {
        // The helper died, and its locks with it: nothing is held either way.
        process.stderr.write(`volume ${v.volumeId}: release for ${sandboxId} failed: ${String(err)}\n`);
      }
      this.unmountLater(v);
    }
  }

  /** Takes the sandbox's hold of a volume, waiting while an unmount of it is under way. */
  private async hold(sandboxId: string, v: VolumeRequest): Promise<void> {
    const until = Date.now() + JOB_TIMEOUT_MS;
    for (;;) {
      try {
        await this.helper.run('volume_hold', [this.root as string, v.tenantKey, v.volumeId, `${sandboxId}/${v.volumeId}`], JOB_TIMEOUT_MS);
        return;
      } catch (err) {
        // `busy`: an unmount holds the users file for the few ms of its umount.
        if (!/: busy$/.test((err as Error).message) || Date.now() > until) throw err;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  }

  /** (Re)starts the volume's idle clock: one timer per volume, the latest release's. */
  private unmountLater(v: Pick<VolumeRequest, 'tenantKey' | 'volumeId'>): void {
    const before = this.idle.get(v.volumeId);
    if (before) clearTimeout(before.timer);
    const timer = setTimeout(() => {
      this.idle.delete(v.volumeId);
      void this.unmount(v);
    }, this.idleUnmountMs);
    timer.unref();
    this.idle.set(v.volumeId, { timer, v });
  }

  /** Unmounts the volume unless a sandbox of the host holds it (UNMOUNT checks, under the volume's lock). */
  private async unmount(v: Pick<VolumeRequest, 'tenantKey' | 'volumeId'>): Promise<void> {
    try {
      await this.helper.run('volume_unmount', [this.root as string, v.tenantKey, v.volumeId], JOB_TIMEOUT_MS);
    } catch (err) {
      // Left mounted, as it was before: the next release of it tries again.
      process.stderr.write(`volume ${v.volumeId}: idle unmount failed: ${String(err)}\n`);
    }
  }

  /**
   * At start: volumes of the host left mounted (by an executor killed before their idle clock
   * ran out) get an idle clock here; those another executor's sandbox holds stay.
   */
  async sweep(): Promise<void> {
    if (this.root === undefined || this.unsupported !== undefined) return;
    const mountinfo = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
    const below = `${this.root === '/' ? '' : this.root}/`;
    for (const line of mountinfo.split('\n')) {
      const point = (line.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
      if (!point.startsWith(below)) continue;
      const [tenantKey = '', volumeId = '', mnt, ...rest] = point.slice(below.length).split('/');
      if (mnt === 'mnt' && rest.length === 0 && TENANT_KEY.test(tenantKey) && VOLUME_ID.test(volumeId)) this.unmountLater({ tenantKey, volumeId });
    }
  }

  /** At the executor's stop (its sandboxes are gone): volumes waiting on their idle clock are unmounted now. */
  async close(): Promise<void> {
    const waiting = [...this.idle.values()];
    this.idle.clear();
    for (const w of waiting) clearTimeout(w.timer);
    await Promise.all(waiting.map((w) => this.unmount(w.v)));
    this.helper.close();
  }
}
