import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode } from '@kiln/proto/executor/errors';
import { AgentError, InvalidArgumentError } from '../errors.js';
import { syntheticEtc } from './bwrap-args.js';
import type { BootStep } from './boot-step.js';
import type { EgressPolicy } from '../egress/policy.js';
import { Sandbox } from './sandbox.js';
import type { SandboxSpec } from './spec.js';
import { PlainWorkspaceFs, type WorkspaceFs } from './workspace-fs.js';
import { checkVolumeRequests, VolumesUnsupportedError, type VolumeHost, type VolumeRequest } from './volumes.js';

export interface SandboxLimits {
  memoryMB: number;
  /** Share of one core (template `resources.cpu`). */
  cpus: number;
  diskMB: number;
  maxProcesses: number;
  maxOpenFiles: number;
}

/** The executor already hosts `maxSandboxes` sandboxes. */
export class CapacityError extends AgentError {
  constructor(readonly maxSandboxes: number) {
    super(ErrorCode.ERROR_CODE_EXECUTOR_FULL, `executor is full: ${maxSandboxes} sandboxes`, { maxSandboxes });
  }
}

/** No sandbox of that id on this executor, or it died. */
export class SandboxNotFoundError extends AgentError {
  constructor(readonly sandboxId: string) {
    super(ErrorCode.ERROR_CODE_SANDBOX_NOT_FOUND, `sandbox ${sandboxId} does not exist on this executor`, { sandboxId });
  }
}

/** The executor's image has no such language runner. */
export class UnsupportedRunnerError extends AgentError {
  constructor(
    readonly runner: string,
    readonly offered: string[],
  ) {
    super(ErrorCode.ERROR_CODE_UNSUPPORTED_RUNNER, `language runner "${runner}" is not offered by this executor; it offers ${offered.join(', ')}`, { runner, offered });
  }
}

/** The language runners; KILN_RUNTIME_DIR overrides it for runner development. */
const RUNNER_DIR = process.env.KILN_RUNTIME_DIR ?? fileURLToPath(new URL('../../runtime', import.meta.url));
const SANDBOX_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** The longest a boot's spare workspace waits for the sandbox's first invocation to end. */
const SPARE_AFTER_MS = 1000;

/**
 * Creates, tracks and destroys the sandboxes of one executor. Each sandbox gets its own
 * directories under the data dir and, when the executor runs as root, its own host uid, so
 * that RLIMIT_NPROC counts one sandbox's processes only (a fork bomb cannot starve the others).
 */
export class SandboxManager {
  private readonly sandboxes = new Map<string, Sandbox>();
  private readonly freeSlots: number[];
  private readonly slotOf = new Map<string, number>();
  /** Specs of sandboxes from the start of their boot until released (their steps' state). */
  private readonly specOf = new Map<string, SandboxSpec>();
  private readonly etcDir: string;
  private readonly workspaces: WorkspaceFs;
  private readonly isRoot = process.getuid?.() === 0;

  constructor(
    private readonly opts: {
      dataDir: string;
      maxSandboxes: number;
      /** Language runners this executor's image offers. */
      runners: string[];
      uidBase: number;
      bwrapPath: string;
      /** What the executor sets up around each sandbox before it runs (see boot-step.ts). */
      bootSteps?: readonly BootStep[];
      /** What /workspace is made of (workspace-fs.ts); default: a plain directory, no hard size. */
      workspaceFs?: WorkspaceFs;
      /** Where named volumes are mounted from (volumes.ts); absent: a sandbox with volumes is refused. */
      volumes?: VolumeHost;
    },
  ) {
    this.freeSlots = Array.from({ length: opts.maxSandboxes }, (_, i) => opts.maxSandboxes - 1 - i);
    this.etcDir = join(opts.dataDir, 'etc');
    this.workspaces = opts.workspaceFs ?? new PlainWorkspaceFs('no hard size for /workspace (not configured)', this.isRoot);
  }

  /** Clears what a previous executor with this data dir left (its mounts first), then makes the dirs. */
  async init(): Promise<void> {
    await this.workspaces.init();
    await this.opts.volumes?.sweep();
    // Sandboxes die with their executor (bwrap --die-with-parent), so whatever is under
    // sandboxes/ now was left by an executor of this data dir that was killed: none of it is
    // in use. rm does not follow symlinks a sandbox may have planted in its workspace.
    await rm(join(this.opts.dataDir, 'sandboxes'), { recursive: true, force: true });
    await mkdir(join(this.opts.dataDir, 'sandboxes'), { recursive: true, mode: 0o711 });
    await mkdir(this.etcDir, { recursive: true });
    for (const [name, text] of Object.entries(syntheticEtc())) await writeFile(join(this.etcDir, name), text, { mode: 0o644 });
  }

  /** What each /workspace is made of, and why (Health reports it). */
  get workspaceFs(): Pick<WorkspaceFs, 'kind' | 'detail'> {
    return { kind: this.workspaces.kind, detail: this.workspaces.detail };
  }

  get size(): number {
    return this.sandboxes.size;
  }

  get(id: string): Sandbox {
    const sandbox = this.sandboxes.get(id);
    if (!sandbox || sandbox.state === 'dead') throw new SandboxNotFoundError(id);
    return sandbox;
  }

  list(): Sandbox[] {
    return [...this.sandboxes.values()];
  }

  /** `allowCidrs`: private ranges an outbound sandbox may reach (network.ts); `egress`: the template's egress policy (egress/). */
  async create(id: string, runner: string, limits: SandboxLimits, allowNetwork: boolean, allowCidrs: readonly string[] = [], aheadOfTime = false, egress?: EgressPolicy, volumes: readonly VolumeRequest[] = []): Promise<Sandbox> {
    if (!SANDBOX_ID.test(id)) throw new InvalidArgumentError(`sandbox id must match ${SANDBOX_ID}; got "${id.slice(0, 100)}"`, { sandboxId: id.slice(0, 100) });
    if (!this.opts.runners.includes(runner)) throw new UnsupportedRunnerError(runner, this.opts.runners);
    if (this.sandboxes.has(id)) return this.get(id);
    const slot = this.freeSlots.pop();
    if (slot === undefined) throw new CapacityError(this.opts.maxSandboxes);
    this.slotOf.set(id, slot);
    const root = join(this.opts.dataDir, 'sandboxes', id);
    const hostUid = this.isRoot ? this.opts.uidBase + slot : (process.getuid?.() ?? 1000);
    const hostGid = this.isRoot ? hostUid : (process.getgid?.() ?? 1000);
    const spec: SandboxSpec = {
      id,
      runner,
      workspaceDir: join(root, 'workspace'),
      taskDir: join(root, 'task'),
      runnerDir: RUNNER_DIR,
      etcDir: this.etcDir,
      memoryMB: limits.memoryMB,
      cpus: limits.cpus,
      diskMB: limits.diskMB,
      tmpMB: Math.max(16, Math.floor(limits.diskMB / 2)),
      maxProcesses: limits.maxProcesses,
      maxOpenFiles: limits.maxOpenFiles,
      maxFileMB: limits.diskMB,
      allowNetwork,
      allowCidrs,
      ...(egress ? { egress } : {}),
      hostUid,
      hostGid,
    };
    this.specOf.set(id, spec);
    try {
      if (volumes.length > 0) {
        checkVolumeRequests(volumes);
        // Synced volumes need nothing of the host (a tmpfs in the sandbox); image ones need the volume root.
        const images = volumes.filter((v) => v.synced !== true);
        if (images.length > 0 && !this.opts.volumes) throw new VolumesUnsupportedError('no volume root (KILN_VOLUME_DIR)');
        const bound = images.length > 0 && this.opts.volumes ? await this.opts.volumes.prepare(id, images) : [];
        spec.volumes = [...bound, ...volumes.filter((v) => v.synced === true).map((v) => ({ hostDir: '', path: v.path, readOnly: v.readOnly, syncedMB: v.sizeMB }))];
      }
      await this.workspaces.prepare(spec, !aheadOfTime);
      await mkdir(spec.taskDir, { recursive: true, mode: 0o755 });
      const sandbox = await Sandbox.boot(spec, this.opts.bwrapPath, this.opts.bootSteps);
      this.sandboxes.set(id, sandbox);
      this.afterFirstWork(sandbox, () => this.workspaces.booted(spec));
      return sandbox;
    } catch (err) {
      await this.release(id);
      throw err;
    }
  }

  /**
   * Runs `then` once the sandbox's first invocation has ended (or it died), or after
   * SPARE_AFTER_MS (a session's boot has no invocation). A cold start's load and first call
   * follow its boot; making the next spare workspace meanwhile took their CPU and libuv's
   * threads (the load took 11 ms instead of 5).
   */
  private afterFirstWork(sandbox: Sandbox, then: () => void): void {
    let done = false;
    const once = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      then();
    };
    const timer = setTimeout(once, SPARE_AFTER_MS);
    void sandbox.firstWorkDone.then(once);
  }

  /** Kills a sandbox and deletes its directories. Unknown ids are a no-op. */
  async destroy(id: string): Promise<boolean> {
    const sandbox = this.sandboxes.get(id);
    if (sandbox) await sandbox.destroy();
    await this.release(id);
    return sandbox !== undefined;
  }

  /** Destroys every sandbox, booting ones included (their workspaces are mounted already). */
  async destroyAll(): Promise<void> {
    const ids = new Set([...this.sandboxes.keys(), ...this.specOf.keys()]);
    await Promise.all([...ids].map((id) => this.destroy(id)));
  }

  /** At the executor's stop: destroys every sandbox, then what was made ahead of time for new ones. */
  async close(): Promise<void> {
    await this.destroyAll();
    await this.workspaces.close();
    await this.opts.volumes?.close();
  }

  private async release(id: string): Promise<void> {
    this.sandboxes.delete(id);
    const spec = this.specOf.get(id);
    this.specOf.delete(id);
    try {
      // In reverse order, as each step may build on the ones before it.
      if (spec) for (const step of [...(this.opts.bootSteps ?? [])].reverse()) await step.release(spec);
      // Unmounted before the directory tree goes, or rm would descend into the workspace's filesystem.
      if (spec) await this.workspaces.release(spec);
    } finally {
      // After the steps' release (the cgroup's kills what was left): no process of the sandbox,
      // so no mount namespace of it, still holds a volume's filesystem. Even when a step failed:
      // a hold kept for ever would keep the volume mounted past its idle clock, and the slot lost.
      await this.opts.volumes?.release(id);
      const slot = this.slotOf.get(id);
      if (slot !== undefined) {
        this.slotOf.delete(id);
        this.freeSlots.push(slot);
      }
    }
    await rm(join(this.opts.dataDir, 'sandboxes', id), { recursive: true, force: true });
  }
}
