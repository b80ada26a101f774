import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, existsSync, openSync, closeSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import type { Template } from '../templates/template.js';
import { templateRunners } from '../templates/template.js';
import type { ExecutorHandle, Runtime } from './runtime.js';

interface LocalRecord extends ExecutorHandle {
  pid: number;
}

export interface LocalRuntimeOptions {
  /** Deployment name used as the executors' label. */
  deployment: string;
  /** Where executor state files and sandbox directories live. */
  dataDir: string;
  /** Path of the executor's compiled entry point. */
  executorMain: string;
  startTimeoutMs?: number;
  /**
   * Address executors' NFS servers listen on (each on its own ephemeral port, recorded as
   * `nfsPort`); undefined turns NFS off in the executors.
   */
  nfsBind?: string;
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
 * The embedded default: executors are processes on this host. Each writes a state file
 * (labels, pid, address, token) so that a restarted control plane can list and adopt them.
 * They run detached, in their own process group, so a control-plane crash leaves them up.
 */
export class LocalRuntime implements Runtime {
  readonly kind = 'local';
  private readonly stateDir: string;

  constructor(private readonly opts: LocalRuntimeOptions) {
    this.stateDir = join(opts.dataDir, 'executors');
  }

  async start(template: Template, executorId: string): Promise<ExecutorHandle> {
    await mkdir(this.stateDir, { recursive: true });
    const token = randomBytes(24).toString('base64url');
    // The token goes in a 0600 file, never the executor's environment (which everything it
    // spawns would inherit, and /proc/<pid>/environ shows for the life of the process).
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
        KILN_EXECUTOR_ID: executorId,
        KILN_TEMPLATE: template.name,
        KILN_AGENT_LISTEN: '127.0.0.1:0',
        KILN_NFS_LISTEN: this.opts.nfsBind ? `${this.opts.nfsBind}:0` : 'off',
        // The NFS gateway runs in this process and reaches local executors over loopback.
        KILN_NFS_TRUSTED_PROXIES: '127.0.0.1,::1',
        KILN_AGENT_TOKEN_FILE: tokenPath,
        KILN_DATA_DIR: join(this.opts.dataDir, 'sandboxes', executorId),
        KILN_MAX_SANDBOXES: String(template.pool.sandboxesPerExecutor),
        KILN_RUNTIMES: templateRunners(template).join(','),
        KILN_SANDBOX_UID_BASE: String(200_000 + (parseInt(executorId.replace(/\D/g, '').slice(-4) || '0', 10) % 500) * 1000),
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
        reject(new Error(`executor ${executorId} exited with ${code}; see ${logPath}`));
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
    };
    await writeFile(join(this.stateDir, `${executorId}.json`), JSON.stringify(record), { mode: 0o600 });
    return record;
  }

  async stop(executorId: string): Promise<void> {
    const record = await this.read(executorId);
    // Another deployment's executor (state dirs can be shared) or a made-up id is "unknown":
    // a no-op, so nothing outside this deployment's records is killed or deleted.
    if (!record || record.labels.deployment !== this.opts.deployment || record.id !== executorId) return;
    if (alive(record.pid)) {
      process.kill(record.pid, 'SIGTERM');
      for (let i = 0; i < 100 && alive(record.pid); i++) await new Promise((r) => setTimeout(r, 50));
      if (alive(record.pid)) process.kill(-record.pid, 'SIGKILL');
    }
    await rm(join(this.stateDir, `${executorId}.json`), { force: true });
    await rm(join(this.stateDir, `${executorId}.token`), { force: true });
  }

  async list(): Promise<ExecutorHandle[]> {
    if (!existsSync(this.stateDir)) return [];
    const out: ExecutorHandle[] = [];
    for (const name of await readdir(this.stateDir)) {
      if (!name.endsWith('.json')) continue;
      const record = await this.read(name.slice(0, -5));
      if (!record || record.labels.deployment !== this.opts.deployment) continue;
      if (alive(record.pid)) out.push(record);
      else {
        await rm(join(this.stateDir, name), { force: true });
        await rm(join(this.stateDir, `${record.id}.token`), { force: true });
      }
    }
    return out;
  }

  async close(): Promise<void> {
    // Nothing held open: executors are independent processes.
  }

  /** Last lines of an executor's log, for error messages. */
  async tail(executorId: string, lines = 20): Promise<string> {
    const path = join(this.stateDir, `${executorId}.log`);
    if (!existsSync(path)) return '';
    const all: string[] = [];
    for await (const line of createInterface({ input: createReadStream(path) })) all.push(line);
    return all.slice(-lines).join('\n');
  }

  private async read(executorId: string): Promise<LocalRecord | undefined> {
    try {
      return JSON.parse(await readFile(join(this.stateDir, `${executorId}.json`), 'utf8')) as LocalRecord;
    } catch {
      return undefined;
    }
  }
}
