import { access, chmod, chown, constants, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
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
  prepare(spec: WorkspaceSpec): Promise<void>;
  release(spec: WorkspaceSpec): Promise<void>;
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

  release(): Promise<void> {
    // The manager removes the sandbox's directory tree.
    return Promise.resolve();
  }
}

/**
 * Each workspace is its own ext4 filesystem in a sparse image file, loop-mounted at the
 * workspace dir: every write into it (session processes, handlers, terminals, NFS, the files
 * API, all as whatever uid) meets ENOSPC at `diskMB`, and what the sandbox wrote is gone with
 * one umount and one unlink.
 *
 * Cost per sandbox: a sparse copy of a "golden" empty image made once per size (`cp
 * --sparse=always` copies ~0.4 MB of metadata for any size) and a mount, in one shell. mkfs runs
 * once per size per executor. Options, and why:
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
  private readonly goldens = new Map<number, Promise<string>>();
  /** Sandboxes whose image is (or may be) mounted: release only unmounts what prepare mounted. */
  private readonly mounted = new Set<string>();

  constructor(private readonly dataDir: string) {
    this.imageDir = join(dataDir, 'disk');
    this.detail = `each /workspace is an ext4 image under ${this.imageDir}, loop-mounted with a hard size of diskMB`;
  }

  /**
   * Detaches leftover workspace mounts of a previous executor with this data dir (a crash leaves
   * them mounted) and deletes its images; the manager then deletes its directories.
   */
  async init(): Promise<void> {
    await unmountBelow(this.dataDir);
    await rm(this.imageDir, { recursive: true, force: true });
    // The data dir first, traversable (sandbox uids reach their workspaces through it); only the
    // image dir is private. A recursive mkdir would make the data dir 0700 too.
    await mkdir(this.dataDir, { recursive: true, mode: 0o711 });
    await mkdir(this.imageDir, { mode: 0o700 });
  }

  async prepare(spec: WorkspaceSpec): Promise<void> {
    const golden = await this.golden(spec.diskMB);
    await mkdir(spec.workspaceDir, { recursive: true, mode: 0o755 });
    this.mounted.add(spec.id);
    try {
      // One shell for both steps: a spawn from Node costs more than the work itself.
      await runTool('sh', ['-c', 'cp --sparse=always -- "$1" "$2" && exec mount -o loop,nosuid,nodev,noinit_itable -- "$2" "$3"', 'sh', golden, this.imagePath(spec), spec.workspaceDir]);
    } catch (err) {
      throw new WorkspaceFsError(spec.id, (err as Error).message);
    }
    // The root of a fresh ext4 belongs to root; the sandbox's host uid owns its workspace.
    await chown(spec.workspaceDir, spec.hostUid, spec.hostGid);
    await chmod(spec.workspaceDir, 0o755);
  }

  async release(spec: WorkspaceSpec): Promise<void> {
    if (this.mounted.has(spec.id)) {
      // Lazy: the sandbox is dead, but an NFS handle or a files API stream may still hold a file
      // on it. Detached at once, its filesystem and loop device go when the last one closes.
      if (await isMountPoint(spec.workspaceDir)) {
        try {
          await runTool('umount', ['-l', spec.workspaceDir]);
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
