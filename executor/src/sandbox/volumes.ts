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
use Fcntl qw(:flock O_RDWR O_CREAT O_NOFOLLOW);
$tenant =~ /^[0-9a-f]{32}$/ or die "bad tenant key\n";
$vol =~ /^vol_[0-9a-f]{32}$/ or die "bad volume id\n";
$size_mb =~ /^[0-9]+$/ && $size_mb > 0 or die "bad size\n";
sub realdir {
  my ($p) = @_;
  if (!lstat($p)) { mkdir($p, 0711) or $!{EEXIST} or die "mkdir $p: $!\n"; lstat($p) or die "lstat $p: $!\n"; }
  -l _ and die "$p is a symbolic link; refusing it\n";
  -d _ or die "$p is not a directory\n";
  (lstat(_))[4] == $> or die "$p is not owned by the executor's uid\n";
  return (lstat(_))[0];
}
realdir($root);
realdir("$root/$tenant");
my $dir_dev = realdir("$root/$tenant/$vol");
sysopen(my $lock, "$root/$tenant/$vol/lock", O_RDWR | O_CREAT | O_NOFOLLOW, 0600) or die "lock: $!\n";
flock($lock, LOCK_EX) or die "flock: $!\n";
my $mnt = "$root/$tenant/$vol/mnt";
my $mnt_dev = realdir($mnt);
return if $mnt_dev != $dir_dev;  # mounted already (by this or another executor of the host)
my $image = "$root/$tenant/$vol/image";
sub run {
  open(my $out, '-|', '/bin/sh', '-c', 'exec 2>&1; exec "$@"', 'sh', @_) or die "sh: $!\n";
  my $text = do { local $/; <$out> } // '';
  close($out) or die "$_[0]: " . (($text =~ s/\s+$//r) || ('exit status ' . ($? >> 8))) . "\n";
}
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

/** setxattr(2) by architecture. */
const SETXATTR: Record<string, number> = { x64: 188, arm64: 5 };
const JOB_TIMEOUT_MS = 120_000;

/**
 * The volumes of one host: `<root>/<tenantKey>/<volumeId>/{image,mnt,lock}`. An ext4 image per
 * volume, made on its first mount with the volume's size and loop-mounted at `mnt`, where it
 * stays mounted (sandboxes bind the mount point; deleting the volume unmounts it, in the
 * control plane: control-plane/src/volumes/host.ts). The root is the same for every executor
 * of the host (KILN_VOLUME_DIR), outside their data dirs, which are deleted when they stop.
 */
export class VolumeHost {
  private readonly helper = new HostHelper({ volume_mount: JOB });

  constructor(
    private readonly root: string | undefined,
    /** Why volumes cannot be hosted here, or undefined when they can. */
    private readonly unsupported: string | undefined,
  ) {}

  /** Mounts (first: makes) each volume and returns what bwrap binds. */
  async prepare(volumes: readonly VolumeRequest[]): Promise<VolumeBind[]> {
    if (volumes.length === 0) return [];
    checkVolumeRequests(volumes);
    if (this.unsupported !== undefined || this.root === undefined) throw new VolumesUnsupportedError(this.unsupported ?? 'no volume root (KILN_VOLUME_DIR)');
    const setxattr = SETXATTR[process.arch];
    if (setxattr === undefined) throw new VolumesUnsupportedError(`no setxattr number for architecture ${process.arch}`);
    const binds: VolumeBind[] = [];
    for (const v of volumes) {
      try {
        await this.helper.run('volume_mount', [this.root, v.tenantKey, v.volumeId, String(v.sizeMB), String(setxattr)], JOB_TIMEOUT_MS);
      } catch (err) {
        throw new AgentError(ErrorCode.ERROR_CODE_INTERNAL, `mounting volume ${v.volumeId} failed: ${(err as Error).message}`, { volumeId: v.volumeId });
      }
      binds.push({ hostDir: `${this.root}/${v.tenantKey}/${v.volumeId}/mnt`, path: v.path, readOnly: v.readOnly });
    }
    return binds;
  }

  close(): void {
    this.helper.close();
  }
}
