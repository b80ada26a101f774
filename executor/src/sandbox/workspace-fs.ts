import { access, chmod, chown, constants, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { HostHelper } from './host-helper.js';
import { isMountPoint, runTool, TOOL_ENV, unmountBelow } from './mounts.js';
import type { SandboxSpec } from './spec.js';

/** What a workspace filesystem needs to know about its sandbox. */
export type WorkspaceSpec = Pick<SandboxSpec, 'id' | 'workspaceDir' | 'hostUid' | 'hostGid' | 'diskMB'>;

/**
 * Makes and removes the host directory a sandbox sees as /workspace. `prepare` runs before bwrap
 * binds the directory; `release` after the sandbox is gone, and must tolerate a `prepare` that
 * never ran or failed half-way.
 */
export interface WorkspaceFs {
  /** "ext4-image": a hard size per workspace; "none": a plain directory, no hard size. */
  readonly kind: 'ext4-image' | 'none';
  /** Why this kind (for start-up logs and Health). */
  readonly detail: string;
  /** Removes what a previous executor with this data dir left (mounts first). */
  init(): Promise<void>;
  /**
   * Makes `spec.workspaceDir`, whose parent is the sandbox's own directory: prepare may make
   * that parent (it must not exist yet or be empty), and nothing else may be in it before.
   */
  /**
   * `urgent`: a request waits for this boot, so it may take what was made ahead of time; a boot
   * made ahead of time itself (the warm pool's) leaves that to them.
   */
  prepare(spec: WorkspaceSpec, urgent?: boolean): Promise<void>;
  /**
   * The sandbox of `spec` has booted and done its first work: the time to make what the next
   * urgent one will take (after, not during, a boot and its first call, which would otherwise
   * share the CPU, and the kernel's mount locks, with it).
   */
  booted(spec: WorkspaceSpec): void;
  release(spec: WorkspaceSpec): Promise<void>;
  /** Removes what this executor made ahead of time (spare workspaces); called once, at its stop. */
  close(): Promise<void>;
}

/** Preparing or releasing a sandbox's workspace filesystem failed on the host (our fault, not the caller's). */
export class WorkspaceFsError extends Error {
  constructor(
    readonly sandboxId: string,
    message: string,
  ) {
    super(`workspace of sandbox ${sandboxId}: ${message}`);
    this.name = 'WorkspaceFsError';
  }
}

/** A plain directory owned by the sandbox's uid: no hard size (RLIMIT_FSIZE bounds single files only). */
export class PlainWorkspaceFs implements WorkspaceFs {
  readonly kind = 'none';
  constructor(
    readonly detail: string,
    private readonly chownRoot: boolean,
  ) {}

  init(): Promise<void> {
    return Promise.resolve();
  }

  async prepare(spec: WorkspaceSpec): Promise<void> {
    await mkdir(spec.workspaceDir, { recursive: true, mode: 0o755 });
    if (this.chownRoot) await chown(spec.workspaceDir, spec.hostUid, spec.hostGid);
  }

  booted(): void {
    // Nothing is made ahead of time.
  }

  release(): Promise<void> {
    // The manager removes the sandbox's directory tree.
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Spare workspaces kept mounted per size; one cold start at a time takes one, a burst falls back to mounting its own. */
const SPARES_PER_SIZE = 2;
/** Sizes that keep spares (the most recently used); a template's diskMB rarely changes, so a few cover an executor. */
const SPARE_SIZES = 4;

/**
 * The host helper's jobs (host-helper.ts): a spawn from Node per mount would block the
 * executor's event loop longer than the mount takes. Tool output goes into the error message.
 */
const JOBS = {
  // cp --sparse=always copies ~0.4 MB of metadata for any size; noinit_itable: see ImageWorkspaceFs.
  mount_image: String.raw`
my ($golden, $image, $dir, $nice) = @_;
setpriority(0, 0, $nice) or die "setpriority: $!\n" if $nice;
open(my $out, '-|', '/bin/sh', '-c', 'exec 2>&1; cp --sparse=always -- "$1" "$2" && exec mount -o loop,nosuid,nodev,noinit_itable -- "$2" "$3"', 'sh', $golden, $image, $dir) or die "sh: $!
";
my $text = do { local $/; <$out> } // '';
close($out) or die(($text =~ s/\s+$//r) || ('exit status ' . ($? >> 8)));
`,
  // Lazy: see ImageWorkspaceFs.release.
  umount_lazy: String.raw`
my ($dir) = @_;
open(my $out, '-|', '/bin/sh', '-c', 'exec 2>&1; exec umount -l -- "$1"', 'sh', $dir) or die "sh: $!\n";
my $text = do { local $/; <$out> } // '';
close($out) or die(($text =~ s/\s+$//r) || ('exit status ' . ($? >> 8)));
`,
};
/** Mounts are quick; a minute means the host is in trouble (the same bound as runTool's). */
const JOB_TIMEOUT_MS = 60_000;

/** A mounted, empty workspace made ahead of time: `root` holds the mount point `root/workspace`. */
interface Spare {
  root: string;
  image: string;
}

/**
 * Each workspace is its own ext4 filesystem in a sparse image file, loop-mounted at the
 * workspace dir: every write into it (session processes, handlers, terminals, NFS, the files
 * API, all as whatever uid) meets ENOSPC at `diskMB`, and what the sandbox wrote is gone with
 * one umount and one unlink.
 *
 * Cost per sandbox: a sparse copy of a "golden" empty image made once per size (`cp
 * --sparse=always` copies ~0.4 MB of metadata for any size) and a mount, in one shell: about
 * 40 ms, most of it the loop mount. So that a cold start does not wait for it, the executor keeps
 * a few of them mounted ahead of time (spares, under `spares/`, root-owned and empty until taken)
 * and makes the next one after a sandbox takes one. mkfs runs once per size per executor.
 * Options, and why:
 * - `-O ^has_journal`: the image dies with the sandbox, so there is nothing to recover after a
 *   crash; no journal means no jbd2 thread per mount and fewer writes.
 * - `-m 0`: no blocks reserved for root: the executor's own writes (files API, NFS, as root)
 *   meet the same limit as the sandbox's, and the user gets all of diskMB.
 * - `-i 8192`: twice mke2fs's default inodes per byte; source trees and node_modules are many
 *   small files (about 10 KB each on average), and inode exhaustion is a confusing ENOSPC.
 * - `lazy_itable_init=1` and mount `noinit_itable`: the image's inode tables are holes that read as
 *   zeros, so neither mkfs nor a kernel thread per mount has to write them.
 * - lost+found is removed from the golden image (users would see it in `ls /workspace`; it is
 *   only needed by e2fsck, which never runs on these throwaway images).
 * - Mounted `nosuid,nodev` (not `noexec`: users run code from /workspace).
 */
export class ImageWorkspaceFs implements WorkspaceFs {
  readonly kind = 'ext4-image';
  readonly detail: string;
  private readonly imageDir: string;
  private readonly spareDir: string;
  private readonly goldens = new Map<number, Promise<string>>();
  /** Sandboxes whose image is (or may be) mounted: release only unmounts what prepare mounted. */
  private readonly mounted = new Set<string>();
  /** Mounted spare workspaces by size in MB, in the order sizes were last used (oldest first). */
  private readonly spares = new Map<number, Spare[]>();
  /** Spares being made, by size: a burst of takes does not start a burst of mounts. */
  private readonly making = new Map<number, number>();
  /** Spares are made one at a time, after one another, off the sandboxes' boot path. */
  private refills: Promise<void> = Promise.resolve();
  private spareSeq = 0;
  private closed = false;
  /** Sandboxes whose boot a request waits for, until booted: see prepare. */
  private readonly urgent = new Set<string>();
  private readonly helper = new HostHelper(JOBS);

  constructor(private readonly dataDir: string) {
    this.imageDir = join(dataDir, 'disk');
    this.spareDir = join(dataDir, 'spares');
    this.detail = `each /workspace is an ext4 image under ${this.imageDir}, loop-mounted with a hard size of diskMB`;
  }

  /**
   * Detaches leftover workspace mounts of a previous executor with this data dir (a crash leaves
   * them mounted) and deletes its images; the manager then deletes its directories.
   */
  async init(): Promise<void> {
    await unmountBelow(this.dataDir);
    await rm(this.imageDir, { recursive: true, force: true });
    await rm(this.spareDir, { recursive: true, force: true });
    // The data dir first, traversable (sandbox uids reach their workspaces through it); only the
    // image dir is private. A recursive mkdir would make the data dir 0700 too.
    await mkdir(this.dataDir, { recursive: true, mode: 0o711 });
    await mkdir(this.imageDir, { mode: 0o700 });
    // Traversable like sandboxes/: a spare moves from here to its sandbox's directory.
    await mkdir(this.spareDir, { mode: 0o711 });
  }

  /**
   * Takes a spare of this size when there is one (a rename of its directory, which carries the
   * mount along, and a chown: about 40 ms less on a cold start than a copy and a mount), else
   * mounts a fresh image. `booted` has the next spare made. Only urgent boots take spares and
   * have them made: a warm pool that refills itself would otherwise make spares after each of
   * its boots, on the CPU the requests of that moment need (warm starts took ~10 ms longer).
   */
  async prepare(spec: WorkspaceSpec, urgent = true): Promise<void> {
    this.mounted.add(spec.id);
    if (urgent) this.urgent.add(spec.id);
    const spare = urgent ? this.spares.get(spec.diskMB)?.shift() : undefined;
    if (spare) await this.adopt(spare, spec);
    else await this.mountFresh(spec);
    // The root of a fresh ext4 belongs to root; the sandbox's host uid owns its workspace.
    await chown(spec.workspaceDir, spec.hostUid, spec.hostGid);
    await chmod(spec.workspaceDir, 0o755);
  }

  /** A spare becomes the sandbox's: its image takes the sandbox's name, its directory the sandbox's place. */
  private async adopt(spare: Spare, spec: WorkspaceSpec): Promise<void> {
    try {
      await rename(spare.image, this.imagePath(spec));
      await rename(spare.root, dirname(spec.workspaceDir));
    } catch (err) {
      await this.discardLogged(spare);
      throw new WorkspaceFsError(spec.id, (err as Error).message);
    }
  }

  private async mountFresh(spec: WorkspaceSpec): Promise<void> {
    const golden = await this.golden(spec.diskMB);
    await mkdir(spec.workspaceDir, { recursive: true, mode: 0o755 });
    try {
      await this.copyAndMount(golden, this.imagePath(spec), spec.workspaceDir);
    } catch (err) {
      throw new WorkspaceFsError(spec.id, (err as Error).message);
    }
  }

  /**
   * `background`: a spare, made at nice 19 (with cp and mount, which inherit it), so that on a
   * busy host it takes the CPU the sandboxes and the invocations running meanwhile leave over
   * instead of slowing them down; a workspace a boot waits for is made at normal priority.
   */
  private copyAndMount(golden: string, image: string, dir: string, background = false): Promise<void> {
    return this.helper.run('mount_image', [golden, image, dir, background ? '19' : '0'], JOB_TIMEOUT_MS);
  }

  booted(spec: WorkspaceSpec): void {
    if (this.urgent.delete(spec.id)) this.refill(spec.diskMB);
  }

  /**
   * Has spares of `sizeMB` made up to SPARES_PER_SIZE, one after another. A failure is not the
   * caller's: the next sandbox of this size mounts its own, as if there were no spares.
   */
  private refill(sizeMB: number): void {
    if (this.closed) return;
    // Most recently used last; a size beyond SPARE_SIZES gives its spares back.
    const list = this.spares.get(sizeMB) ?? [];
    this.spares.delete(sizeMB);
    this.spares.set(sizeMB, list);
    for (const [size, old] of this.spares) {
      if (this.spares.size <= SPARE_SIZES) break;
      this.spares.delete(size);
      for (const spare of old) this.refills = this.refills.then(() => this.discardLogged(spare));
    }
    const wanted = SPARES_PER_SIZE - list.length - (this.making.get(sizeMB) ?? 0);
    for (let i = 0; i < wanted; i++) {
      this.making.set(sizeMB, (this.making.get(sizeMB) ?? 0) + 1);
      this.refills = this.refills
        .then(() => (this.closed ? undefined : this.makeSpare(sizeMB)))
        // Logged, not thrown: the next sandbox of this size mounts its own instead.
        .catch((err: unknown) => {
          process.stderr.write(`warning: could not make a spare workspace of ${sizeMB} MB: ${(err as Error).message}\n`);
        })
        .finally(() => this.making.set(sizeMB, (this.making.get(sizeMB) ?? 1) - 1));
    }
  }

  private async makeSpare(sizeMB: number): Promise<void> {
    const n = ++this.spareSeq;
    const spare = { root: join(this.spareDir, String(n)), image: join(this.imageDir, `spare-${n}.img`) };
    const golden = await this.golden(sizeMB);
    await mkdir(join(spare.root, 'workspace'), { recursive: true, mode: 0o755 });
    try {
      await this.copyAndMount(golden, spare.image, join(spare.root, 'workspace'), true);
    } catch (err) {
      await this.discard(spare);
      throw err;
    }
    // A size that fell out of use while this one was being made does not keep it.
    const list = this.spares.get(sizeMB);
    if (this.closed || !list) await this.discard(spare);
    else list.push(spare);
  }

  /**
   * discard, logging a failure instead of throwing it: what stays mounted is under this data dir,
   * which the next executor's init (or the control plane, for a dead executor) detaches.
   */
  private discardLogged(spare: Spare): Promise<void> {
    return this.discard(spare).catch((err: unknown) => {
      process.stderr.write(`warning: could not remove spare workspace ${spare.root}: ${(err as Error).message}\n`);
    });
  }

  private async discard(spare: Spare): Promise<void> {
    const dir = join(spare.root, 'workspace');
    if (await isMountPoint(dir)) await this.helper.run('umount_lazy', [dir], JOB_TIMEOUT_MS);
    await rm(spare.image, { force: true });
    await rm(spare.root, { recursive: true, force: true });
  }

  /** Unmounts and deletes the spares (after any being made); sandboxes are the manager's to release. */
  async close(): Promise<void> {
    this.closed = true;
    await this.refills;
    const all = [...this.spares.values()].flat();
    this.spares.clear();
    await Promise.all(all.map((spare) => this.discardLogged(spare)));
    this.helper.close();
  }

  async release(spec: WorkspaceSpec): Promise<void> {
    this.urgent.delete(spec.id);
    if (this.mounted.has(spec.id)) {
      // Lazy: the sandbox is dead, but an NFS handle or a files API stream may still hold a file
      // on it. Detached at once, its filesystem and loop device go when the last one closes.
      if (await isMountPoint(spec.workspaceDir)) {
        try {
          await this.helper.run('umount_lazy', [spec.workspaceDir], JOB_TIMEOUT_MS);
        } catch (err) {
          throw new WorkspaceFsError(spec.id, (err as Error).message);
        }
      }
      this.mounted.delete(spec.id);
    }
    // An open loop device keeps the file's blocks until it lets go; the name goes now.
    await rm(this.imagePath(spec), { force: true });
  }

  private imagePath(spec: WorkspaceSpec): string {
    return join(this.imageDir, `${spec.id}.img`);
  }

  /** The empty image of `sizeMB`, made once (concurrent callers share the one mkfs). */
  private golden(sizeMB: number): Promise<string> {
    let made = this.goldens.get(sizeMB);
    if (!made) {
      made = this.makeGolden(sizeMB);
      // A failed mkfs is retried by the next sandbox of this size instead of failing them all.
      made.catch(() => this.goldens.delete(sizeMB));
      this.goldens.set(sizeMB, made);
    }
    return made;
  }

  private async makeGolden(sizeMB: number): Promise<string> {
    const path = join(this.imageDir, `golden-${sizeMB}M.img`);
    const partial = `${path}.partial`;
    const fh = await open(partial, 'w', 0o600);
    try {
      await fh.truncate(sizeMB * 1024 * 1024);
    } finally {
      await fh.close();
    }
    try {
      await runTool('mkfs.ext4', ['-q', '-F', '-O', '^has_journal', '-m', '0', '-i', '8192', '-E', 'lazy_itable_init=1,nodiscard', partial]);
      await runTool('debugfs', ['-w', '-R', 'rmdir lost+found', partial]);
    } catch (err) {
      await rm(partial, { force: true });
      throw new WorkspaceFsError(`(golden ${sizeMB} MB)`, (err as Error).message);
    }
    await rename(partial, path);
    return path;
  }
}

/** CAP_SYS_ADMIN's bit in /proc/self/status CapEff (mount needs it). */
const CAP_SYS_ADMIN = 21n;

/**
 * Picks how workspaces get their size on this host: an ext4 image per workspace when the
 * executor can loop-mount (root with CAP_SYS_ADMIN, /dev/loop-control, e2fsprogs), otherwise a
 * plain directory. Never throws: a host that cannot mount images still runs sandboxes, and
 * `detail` says what is missing (logged at start-up and reported by Health).
 */
export async function detectWorkspaceFs(dataDir: string): Promise<WorkspaceFs> {
  const none = (why: string): WorkspaceFs => new PlainWorkspaceFs(`no hard size for /workspace (diskMB is not enforced by the kernel): ${why}`, process.getuid?.() === 0);
  const uid = process.getuid?.();
  if (uid !== 0) return none(`the executor runs as uid ${uid ?? '?'}, and only root can loop-mount images`);
  const status = await readFile('/proc/self/status', 'utf8').catch(() => '');
  const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  if (!capEff || ((BigInt(`0x${capEff}`) >> CAP_SYS_ADMIN) & 1n) === 0n) return none('the executor lacks CAP_SYS_ADMIN (an unprivileged container)');
  try {
    await access('/dev/loop-control', constants.R_OK | constants.W_OK);
  } catch {
    return none('/dev/loop-control is not available (no loop devices in this container or host)');
  }
  for (const tool of ['mkfs.ext4', 'debugfs', 'mount', 'umount', 'cp']) {
    if (!(await onPath(tool))) return none(`${tool} is not installed (Debian: e2fsprogs, mount, coreutils)`);
  }
  return new ImageWorkspaceFs(dataDir);
}

async function onPath(tool: string): Promise<boolean> {
  for (const dir of TOOL_ENV.PATH.split(':')) {
    try {
      await access(join(dir, tool), constants.X_OK);
      return true;
    } catch {
      // not in this directory; try the next
    }
  }
  return false;
}
