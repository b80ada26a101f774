import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { releaseExecutorCgroups } from '@kiln/executor/cgroup';
import { unmountBelow } from '@kiln/executor/mounts';
import { createReadStream, existsSync, openSync, closeSync, readFileSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import type { Template } from '../templates/template.js';
import { templateRunners } from '../templates/template.js';
import { log } from '../log.js';
import { ensureEgressCa, type EgressCaFiles } from '../egress/ca.js';
import type { ExecutorHandle, Platform } from './platform.js';
import { killProcessesWithUids, waitForUidsUnused } from './uids/host.js';
import type { UidRange, UidRanges } from './uids/ranges.js';

interface LocalRecord extends ExecutorHandle {
  pid: number;
  /** The executor's host uid range (also in Redis, under its id), for operators reading the state file. */
  uids?: UidRange;
}

/** The executor exits with this status when its uid range is in use on the host (executor/src/sandbox/uid-lease.ts). */
const UID_RANGE_BUSY_EXIT = 75;
/** Ranges tried per executor start before giving up (each busy one costs an executor start). */
const UID_RANGE_TRIES = 8;
/** How long a stopped executor's sandboxes may take to die before its files and uids are let go. */
const SANDBOXES_GONE_MS = 5000;
/** When a stopped executor whose sandboxes were still dying is looked at again (after each failed try). */
const LET_GO_RETRY_MS = [5_000, 15_000, 60_000, 300_000];
/** Executor ids as the pool keeper makes them; anything else never names a directory. */
const EXECUTOR_ID = /^[A-Za-z0-9_-]{1,128}$/;

/** The executor found its uid range in use on the host (another deployment's executor, or stray processes). */
class UidRangeBusyError extends Error {
  constructor(executorId: string, range: UidRange) {
    super(`executor ${executorId}: host uids ${range.firstUid}-${range.firstUid + range.size - 1} are in use on this host`);
    this.name = 'UidRangeBusyError';
  }
}

export interface LocalPlatformOptions {
  /** Deployment name used as the executors' label. */
  deployment: string;
  /** Where executor state files and sandbox directories live. */
  dataDir: string;
  /** Path of the executor's compiled entry point. */
  executorMain: string;
  /**
   * Host uid ranges (Redis): each executor gets sandbox uids no other executor on this host
   * shares, so RLIMIT_NPROC (counted per host uid) of one sandbox never starves another's.
   */
  uids: UidRanges;
  startTimeoutMs?: number;
  /**
   * Address executors' NFS servers listen on (each on its own ephemeral port, recorded as
   * `nfsPort`); undefined turns NFS off in the executors.
   */
  nfsBind?: string;
  /** KILN_EGRESS_DNS for the executors (their egress proxies' resolvers); absent: the host's. */
  egressDns?: string | undefined;
  /** How long the executors keep a volume no sandbox uses mounted, ms (KILN_VOLUME_IDLE_UNMOUNT_MS); absent: their default. */
  volumeIdleUnmountMs?: number | undefined;
  /** The egress CA the executors' proxies intercept HTTPS with (made on first use when missing). */
  egressCa?: EgressCaFiles | undefined;
}

/** The executor's ready line (executor/src/main.ts). */
interface ReadyLine {
  port: number;
  /** 0 when the executor serves no NFS. */
  nfsPort?: number;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether a state file's pid is still that executor: alive, and running the executor's entry
 * point. State files outlive a stop that leaves executors running (the default for SIGTERM) and
 * so may outlive a reboot or a container restart, after which the pid can be anyone's; an
 * unrelated process must never be adopted, nor signalled by `stop`.
 */
function runsExecutor(pid: number, executorMain: string): boolean {
  if (!alive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(executorMain);
  } catch {
    return false;
  }
}

/**
 * The embedded default: executors are processes on this host. Each writes a state file
 * (labels, pid, address, token) so that a restarted control plane can list and adopt them.
 * They run detached, in their own process group, so a control-plane crash leaves them up.
 */
export class LocalPlatform implements Platform {
  readonly kind = 'local';
  private readonly stateDir: string;
  /** Deferred releases of stopped executors' files and uids, by executor id (see letGo). */
  private readonly retries = new Map<string, NodeJS.Timeout>();

  /** The egress CA made (or found) once for every executor this platform starts. */
  private caReady: Promise<EgressCaFiles | undefined> | undefined;

  constructor(private readonly opts: LocalPlatformOptions) {
    this.stateDir = join(opts.dataDir, 'executors');
  }

  /**
   * The CA files for executors, made on first use when missing. Without openssl there is no CA:
   * the executors then refuse secrets that ask for HTTPS (logged once here), and serve the rest.
   */
  private egressCa(): Promise<EgressCaFiles | undefined> {
    const files = this.opts.egressCa;
    if (!files) return Promise.resolve(undefined);
    this.caReady ??= ensureEgressCa(files).then(
      () => files,
      (err: unknown) => {
        log('warn', 'no egress CA: HTTPS secret injection is off', { error: String(err) });
        return undefined;
      },
    );
    return this.caReady;
  }

  /**
   * Claims a uid range, then starts the executor with it. An executor whose range another
   * deployment's executor holds on this host (one with a different Redis cannot see our claims)
   * exits with UID_RANGE_BUSY_EXIT before it reports ready; the range is then given back and a
   * free one above it tried, skipping twice as far each time: the other deployments' executors
   * hold ranges packed from the bottom, and one step a try met the limit of tries on a host
   * running a dozen of them (the full test suite), where doubling passes 255 ranges in 8 tries.
   */
  async start(template: Template, executorId: string): Promise<ExecutorHandle> {
    let fromBlock = 0;
    for (let attempt = 1; ; attempt++) {
      const range = await this.opts.uids.claim(executorId, this.opts.deployment, template.pool.sandboxesPerExecutor, fromBlock);
      try {
        return await this.launch(template, executorId, range);
      } catch (err) {
        // The executor exited (or never reported ready and holds its lease until it does), so
        // the Redis claim can go: the host lease keeps a straggler's range from being reused.
        await this.opts.uids.release(executorId, this.opts.deployment);
        if (!(err instanceof UidRangeBusyError) || attempt >= UID_RANGE_TRIES) throw err;
        fromBlock = range.firstBlock + range.blocks * 2 ** (attempt - 1);
      }
    }
  }

  private async launch(template: Template, executorId: string, uids: UidRange): Promise<LocalRecord> {
    await mkdir(this.stateDir, { recursive: true });
    const token = randomBytes(24).toString('base64url');
    // The token goes in a 0600 file, never the executor's environment (which everything it
    // spawns would inherit, and /proc/<pid>/environ shows for the life of the process).
    const egressCa = await this.egressCa();
    const tokenPath = join(this.stateDir, `${executorId}.token`);
    await writeFile(tokenPath, token, { mode: 0o600 });
    const logPath = join(this.stateDir, `${executorId}.log`);
    const logFd = openSync(logPath, 'a');
    const child = spawn(process.execPath, [this.opts.executorMain], {
      detached: true,
      stdio: ['ignore', 'pipe', logFd],
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        ...(process.env.KILN_RUNTIME_DIR ? { KILN_RUNTIME_DIR: process.env.KILN_RUNTIME_DIR } : {}),
        ...(this.opts.egressDns ? { KILN_EGRESS_DNS: this.opts.egressDns } : {}),
        ...(egressCa ? { KILN_EGRESS_CA_CERT: egressCa.cert, KILN_EGRESS_CA_KEY: egressCa.key, ...(egressCa.upstreamCa ? { KILN_EGRESS_UPSTREAM_CA: egressCa.upstreamCa } : {}) } : {}),
        KILN_EXECUTOR_ID: executorId,
        KILN_TEMPLATE: template.name,
        KILN_AGENT_LISTEN: '127.0.0.1:0',
        KILN_NFS_LISTEN: this.opts.nfsBind ? `${this.opts.nfsBind}:0` : 'off',
        // The NFS gateway runs in this process and reaches local executors over loopback.
        KILN_NFS_TRUSTED_PROXIES: '127.0.0.1,::1',
        KILN_AGENT_TOKEN_FILE: tokenPath,
        KILN_DATA_DIR: join(this.opts.dataDir, 'sandboxes', executorId),
        // Named volumes: one directory for the host's executors, outside their own data dirs
        // (deleted when they stop); the control plane's volumes/service.ts deletes from it too.
        KILN_VOLUME_DIR: join(this.opts.dataDir, 'volumes'),
        ...(this.opts.volumeIdleUnmountMs !== undefined ? { KILN_VOLUME_IDLE_UNMOUNT_MS: String(this.opts.volumeIdleUnmountMs) } : {}),
        KILN_MAX_SANDBOXES: String(template.pool.sandboxesPerExecutor),
        KILN_RUNTIMES: templateRunners(template).join(','),
        KILN_SANDBOX_UID_BASE: String(uids.firstUid),
      },
    });
    closeSync(logFd);
    const ready = await new Promise<ReadyLine>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`executor ${executorId} did not start within ${this.opts.startTimeoutMs ?? 15_000} ms; see ${logPath}`)), this.opts.startTimeoutMs ?? 15_000);
      const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
      lines.once('line', (line) => {
        clearTimeout(timer);
        try {
          resolve(JSON.parse(line) as ReadyLine);
        } catch {
          reject(new Error(`executor ${executorId} printed "${line}" instead of its ready line`));
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(code === UID_RANGE_BUSY_EXIT ? new UidRangeBusyError(executorId, uids) : new Error(`executor ${executorId} exited with ${code}; see ${logPath}`));
      });
    });
    // The ready line was all we needed from stdout; keep draining it so the executor never blocks.
    child.stdout?.resume();
    child.unref();
    (child.stdout as NodeJS.ReadableStream & { unref?: () => void }).unref?.();
    const record: LocalRecord = {
      id: executorId,
      template: template.name,
      address: `127.0.0.1:${ready.port}`,
      token,
      host: 'local',
      labels: { deployment: this.opts.deployment, template: template.name, executor: executorId },
      // Kept in the state file, so a restarted control plane that adopts this executor knows it.
      ...(ready.nfsPort ? { nfsPort: ready.nfsPort } : {}),
      pid: child.pid as number,
      uids,
    };
    await writeFile(join(this.stateDir, `${executorId}.json`), JSON.stringify(record), { mode: 0o600 });
    return record;
  }

  async stop(executorId: string): Promise<void> {
    const record = await this.read(executorId);
    if (!record) {
      // No state file (a control plane died between claiming the range and writing it, or the
      // record went earlier): what is left is only ours if our deployment's uid claim says so.
      if ((await this.opts.uids.get(executorId))?.deployment === this.opts.deployment) await this.letGo(executorId);
      return;
    }
    // Another deployment's executor (state dirs can be shared) or a made-up id is "unknown":
    // a no-op, so nothing outside this deployment's records is killed or deleted.
    if (record.labels.deployment !== this.opts.deployment || record.id !== executorId) return;
    if (runsExecutor(record.pid, this.opts.executorMain)) {
      process.kill(record.pid, 'SIGTERM');
      for (let i = 0; i < 100 && alive(record.pid); i++) await new Promise((r) => setTimeout(r, 50));
      if (alive(record.pid)) process.kill(-record.pid, 'SIGKILL');
    }
    await this.letGo(executorId);
  }

  async list(): Promise<ExecutorHandle[]> {
    if (!existsSync(this.stateDir)) return [];
    const out: ExecutorHandle[] = [];
    for (const name of await readdir(this.stateDir)) {
      if (!name.endsWith('.json')) continue;
      const record = await this.read(name.slice(0, -5));
      if (!record || record.labels.deployment !== this.opts.deployment) continue;
      if (runsExecutor(record.pid, this.opts.executorMain)) out.push(record);
      // Found dead (SIGKILLed, crashed): its files and uids go with its state file.
      else await this.letGo(record.id);
    }
    return out;
  }

  close(): Promise<void> {
    // Executors are independent processes; only deferred releases are pending here (the next
    // start's `list` finishes them).
    for (const t of this.retries.values()) clearTimeout(t);
    this.retries.clear();
    return Promise.resolve();
  }

  /** Last lines of an executor's log, for error messages. */
  async tail(executorId: string, lines = 20): Promise<string> {
    const path = join(this.stateDir, `${executorId}.log`);
    if (!existsSync(path)) return '';
    const all: string[] = [];
    for await (const line of createInterface({ input: createReadStream(path) })) all.push(line);
    return all.slice(-lines).join('\n');
  }

  /**
   * Gives back what a stopped or dead executor held on this host: its files, its cgroups, then its uid range,
   * then (last, so a failed step is retried by the next `list` or `stop`) its state file. Its
   * sandboxes die with it (bwrap --die-with-parent), and any that did not are killed by uid;
   * until no process runs with a uid of its range, nothing is let go: a sandbox still alive could race the removal of its workspace
   * (swap a directory for a symlink under `rm -r`), and its uids are still in use.
   */
  private async letGo(executorId: string, attempt = 0): Promise<void> {
    if (!EXECUTOR_ID.test(executorId)) return;
    const claim = await this.opts.uids.get(executorId);
    // The executor is gone (every caller made sure): what still runs with its uids is a sandbox
    // that outlived it, and is killed before its files go.
    if (claim && claim.deployment === this.opts.deployment) {
      const killed = await killProcessesWithUids(claim.range.firstUid, claim.range.size);
      if (killed > 0) log('warn', 'killed processes a stopped executor left running', { executorId, firstUid: claim.range.firstUid, killed });
    }
    if (claim && claim.deployment === this.opts.deployment && !(await waitForUidsUnused(claim.range.firstUid, claim.range.size, SANDBOXES_GONE_MS))) {
      const retryInMs = LET_GO_RETRY_MS[attempt];
      log('warn', 'a stopped executor still has processes in its uid range; keeping its files and uids for now', { executorId, firstUid: claim.range.firstUid, retryInMs });
      // Nothing else would come back for them before the next restart (`list` at start-up):
      // tried again later, a few times, then left to that.
      if (retryInMs !== undefined && !this.retries.has(executorId)) {
        const timer = setTimeout(() => {
          this.retries.delete(executorId);
          this.letGo(executorId, attempt + 1).catch((err: unknown) => log('warn', 'could not release what a stopped executor held', { executorId, error: String(err) }));
        }, retryInMs);
        timer.unref();
        this.retries.set(executorId, timer);
      }
      return;
    }
    await this.releaseExecutorFiles(executorId);
    // A SIGKILLed executor could not remove its cgroups (it made them below ours, the cgroup it
    // inherited from this process). A failure here leaves empty directories, not a live process
    // (none runs with its uids any more), so it is logged and the rest is still let go.
    await releaseExecutorCgroups(executorId).catch((err: unknown) => log('warn', 'could not remove a stopped executor\'s cgroups', { executorId, error: String(err) }));
    await this.opts.uids.release(executorId, this.opts.deployment);
    await rm(join(this.stateDir, `${executorId}.token`), { force: true });
    await rm(join(this.stateDir, `${executorId}.json`), { force: true });
  }

  /**
   * Removes an executor's directory tree (`<dataDir>/sandboxes/<executorId>`: every sandbox's
   * workspace and task dir). The hook for whatever else holds those files: filesystem images
   * mounted as workspaces must be unmounted here before the tree goes.
   *
   * Only a real directory is removed (a symlink in its place is unlinked, never followed), and
   * `rm` does not follow the symlinks a sandbox may have planted inside its workspace. Callers
   * make sure no sandbox process is alive (letGo), so nothing swaps paths under it meanwhile.
   */
  async releaseExecutorFiles(executorId: string): Promise<void> {
    if (!EXECUTOR_ID.test(executorId)) return;
    const dir = join(this.opts.dataDir, 'sandboxes', executorId);
    const st = await lstat(dir).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));
    if (!st) return;
    // A SIGKILLed executor leaves its workspaces loop-mounted: detach them first, so rm neither
    // fails with EBUSY nor walks into a sandbox's filesystem.
    if (st.isDirectory()) await unmountBelow(dir);
    await rm(dir, { recursive: st.isDirectory(), force: true });
  }

  private async read(executorId: string): Promise<LocalRecord | undefined> {
    try {
      return JSON.parse(await readFile(join(this.stateDir, `${executorId}.json`), 'utf8')) as LocalRecord;
    } catch {
      return undefined;
    }
  }
}
