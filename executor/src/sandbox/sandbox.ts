import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { RunnerChannel, type RunnerMessage } from './channel.js';
import { BLOCK_FD, INFO_FD, SECCOMP_FD, sandboxArgv } from './bwrap-args.js';
import type { BootStep } from './boot-step.js';
import type { SandboxCgroup } from './cgroup.js';
import { childPids, memoryKB } from './proc.js';
import { seccompProgram } from './seccomp.js';
import type { SandboxSpec } from './spec.js';

export type SandboxState = 'booting' | 'idle' | 'busy' | 'dead';

/** One line of output from the sandbox, attributed to the invocation that was running. */
export interface LogSink {
  write(stream: 'stdout' | 'stderr', data: string): void;
}

export class SandboxBootError extends Error {
  constructor(
    readonly sandboxId: string,
    message: string,
  ) {
    super(`sandbox ${sandboxId} failed to boot: ${message}`);
    this.name = 'SandboxBootError';
  }
}

const BOOT_TIMEOUT_MS = 10_000;
const SECCOMP_PROGRAM = seccompProgram();

/**
 * A bubblewrap sandbox running one language runner. It owns the process tree: killing it
 * kills the process group, and bubblewrap's PID namespace takes every descendant with it.
 */
export class Sandbox {
  state: SandboxState = 'booting';
  /** Function version loaded into the runner; empty while warm. */
  functionKey = '';
  readonly createdAt = Date.now();
  bootMs = 0;
  /** Host pid of the language runner (inside the PID namespace), for memory readings. */
  runnerPid = 0;
  exitReason = '';
  /** Why the executor killed the sandbox, when it did (a protocol violation); it becomes the exit reason. */
  private killReason = '';

  private readonly child: ChildProcess;
  private readonly channel: RunnerChannel;
  private waiter: ((msg: RunnerMessage) => void) | undefined;
  private sink: LogSink | undefined;
  private readonly exitWaiters: Array<() => void> = [];
  /** Output written before any invocation (module init), handed to the first one. */
  pendingInitLogs = '';

  private constructor(
    readonly spec: SandboxSpec,
    bwrapPath: string,
  ) {
    const [cmd, ...args] = sandboxArgv(spec, bwrapPath);
    const asOtherUser = process.getuid?.() === 0 && spec.hostUid !== 0;
    // fd 3: the runner channel; INFO_FD: bwrap reports the sandbox's pid as soon as its
    // namespaces exist (its mounts may still be in progress: a step that needs them waits, see
    // devpts.ts); BLOCK_FD: bwrap holds the sandbox, nothing executed, until the steps are done;
    // SECCOMP_FD: the seccomp program bwrap reads and applies. bwrap closes all three before it
    // executes the runner, so none is open inside the sandbox.
    // An explicit environment: bwrap's pid 1 runs as the sandbox user, and /proc/1/environ shows
    // the environment bwrap was started with (its --clearenv does not change that), so it
    // must hold nothing but PATH (prlimit finds bwrap with it).
    this.child = spawn(cmd as string, args, {
      stdio: ['ignore', 'pipe', 'pipe', 'pipe', 'pipe', 'pipe', 'pipe'],
      detached: true,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      ...(asOtherUser ? { uid: spec.hostUid, gid: spec.hostGid } : {}),
    });
    const seccompFd = (this.child.stdio as unknown as Array<Writable | null>)[SECCOMP_FD] as Writable;
    // EPIPE when bwrap dies before reading it: the 'exit' handler below records why it died.
    seccompFd.on('error', () => undefined);
    seccompFd.end(SECCOMP_PROGRAM);
    this.channel = new RunnerChannel(this.child.stdio[3] as Socket);
    this.channel.onMessage((msg) => this.onMessage(msg));
    this.channel.onViolation((reason) => {
      this.killReason = reason;
      this.kill();
    });
    this.child.stdout?.setEncoding('utf8').on('data', (d: string) => this.onOutput('stdout', d));
    this.child.stderr?.setEncoding('utf8').on('data', (d: string) => this.onOutput('stderr', d));
    this.child.on('error', (err) => this.markDead(`spawn failed: ${err.message}`));
    this.child.on('exit', (code, signal) => this.markDead(signal ? `signal: ${signal}` : `exit status ${code ?? 0}`));
  }

  get id(): string {
    return this.spec.id;
  }

  get runtime(): string {
    return this.spec.runtime;
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  /**
   * Host pid of the sandbox's first process inside its namespaces (bwrap's init), from bwrap's
   * --info-fd. Session processes and boot steps enter the namespaces through it.
   */
  namespacePid = 0;

  /**
   * The sandbox's cgroup (set by the cgroup boot step), which bounds memory, tasks and CPU for
   * everything in it; undefined where the executor cannot create cgroups.
   */
  cgroup: SandboxCgroup | undefined;

  /**
   * Starts the sandbox and resolves once its runner says it is ready. `steps` run while bwrap
   * holds the sandbox before anything in it executes (cgroup, network, devpts): a step that fails
   * fails the boot, and nothing the sandbox runs ever sees the state before a step.
   */
  static async boot(spec: SandboxSpec, bwrapPath: string, steps: readonly BootStep[] = []): Promise<Sandbox> {
    const started = performance.now();
    const sandbox = new Sandbox(spec, bwrapPath);
    try {
      sandbox.namespacePid = await readChildPid(sandbox.child.stdio[INFO_FD] as Readable);
      // Side by side: each step only needs the namespaces (devpts waits for bwrap's mounts on its
      // own), and a cold start waits for the slowest, not the sum. All settle before a failure
      // is reported, so the manager's release never races an attach still in progress.
      const ctx = { spec, bwrapPid: sandbox.pid, namespacePid: sandbox.namespacePid, sandbox };
      const attached = await Promise.allSettled(steps.map((step) => step.attach(ctx)));
      const failed = attached.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
      const block = (sandbox.child.stdio as unknown as Array<Writable | null>)[BLOCK_FD] as Writable;
      // EPIPE/ECONNRESET when bwrap died meanwhile: its 'exit' handler records why, and the
      // wait for 'ready' below fails with it.
      block.on('error', () => undefined);
      block.end('1');
      const ready = await sandbox.request(undefined, BOOT_TIMEOUT_MS, (m) => m.type === 'ready');
      if (ready.type !== 'ready') throw new Error(`unexpected first message ${ready.type}`);
      sandbox.runnerPid = await sandbox.findRunnerPid();
    } catch (err) {
      sandbox.kill();
      throw new SandboxBootError(spec.id, `${(err as Error).message}${sandbox.pendingInitLogs ? `: ${sandbox.pendingInitLogs.trim().slice(-500)}` : ''}`);
    }
    sandbox.bootMs = performance.now() - started;
    sandbox.state = 'idle';
    return sandbox;
  }

  /**
   * Sends a message (if any; a string is sent as already-serialised JSON) and waits for the
   * runner's answer: the next message that `accept` takes (by default any that is not a log).
   * Anything else the runner sends meanwhile (a stale or forged `result` for another request,
   * a second answer) is dropped, so code in the sandbox cannot answer for a request it was not
   * given. Rejects when the sandbox dies or the timeout passes; log messages go to the sink.
   */
  request(msg: object | string | undefined, timeoutMs: number, accept: (reply: RunnerMessage) => boolean = () => true): Promise<RunnerMessage> {
    if (this.state === 'dead') return Promise.reject(new Error(`sandbox is dead (${this.exitReason})`));
    return new Promise<RunnerMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new TimeoutError(timeoutMs));
      }, timeoutMs);
      const onExit = (): void => {
        clearTimeout(timer);
        this.waiter = undefined;
        reject(new Error(this.exitReason));
      };
      this.exitWaiters.push(onExit);
      this.waiter = (reply) => {
        if (!accept(reply)) return;
        clearTimeout(timer);
        this.waiter = undefined;
        const i = this.exitWaiters.indexOf(onExit);
        if (i >= 0) this.exitWaiters.splice(i, 1);
        resolve(reply);
      };
      if (msg) this.channel.send(msg);
    });
  }

  /** Routes output of the running invocation; undefined collects it as init output. */
  attach(sink: LogSink | undefined): void {
    this.sink = sink;
  }

  /**
   * Peak memory in MB: the figure the runner's last result carried (`maxRssKB`, free) or, for
   * runners that do not send one, the sandbox cgroup's peak (every process and tmpfs page in
   * it), else the runner's VmHWM. Not the cgroup's peak on every invocation: that file read
   * costs 0.1-0.4 ms, a noticeable share of a hot invocation.
   */
  async peakMemoryMB(reportedKB?: unknown): Promise<number> {
    if (typeof reportedKB === 'number' && reportedKB > 0) return Math.ceil(reportedKB / 1024);
    const bytes = await this.cgroup?.peakMemoryBytes().catch(() => undefined); // unreadable: fall back to /proc
    if (bytes !== undefined) return Math.ceil(bytes / (1024 * 1024));
    return Math.ceil((await memoryKB(this.runnerPid)).peak / 1024);
  }

  kill(): void {
    if (this.child.pid && this.state !== 'dead') {
      try {
        process.kill(-this.child.pid, 'SIGKILL');
      } catch {
        // Already gone: the 'exit' handler records why.
      }
    }
  }

  /** Kills the sandbox and resolves once its process has exited. */
  async destroy(): Promise<void> {
    if (this.state === 'dead') return;
    const exited = new Promise<void>((resolve) => this.exitWaiters.push(resolve));
    this.kill();
    await exited;
  }

  private onMessage(msg: RunnerMessage): void {
    if (msg.type === 'log') {
      this.onOutput(msg.stream === 'stderr' ? 'stderr' : 'stdout', typeof msg.data === 'string' ? msg.data : '');
      return;
    }
    this.waiter?.(msg);
  }

  private onOutput(stream: 'stdout' | 'stderr', data: string): void {
    if (this.sink) this.sink.write(stream, data);
    else if (this.pendingInitLogs.length < 64 * 1024) this.pendingInitLogs += data;
  }

  private markDead(reason: string): void {
    if (this.state === 'dead') return;
    this.state = 'dead';
    this.exitReason = this.killReason ? `${this.killReason} (${reason})` : reason;
    this.channel.close();
    for (const waiter of this.exitWaiters.splice(0)) waiter();
  }

  /** bwrap (host pid) → bwrap's init in the new PID namespace → the runner. */
  private async findRunnerPid(): Promise<number> {
    let pid = this.pid;
    for (let depth = 0; depth < 3; depth++) {
      const kids = await childPids(pid);
      if (kids.length === 0) return pid;
      pid = kids[0] as number;
    }
    return pid;
  }
}

/**
 * Reads bwrap's --info-fd report (`{"child-pid": N, ...}`, written once the namespaces exist)
 * and returns the pid. Rejects if bwrap exits or closes the fd without one.
 */
function readChildPid(info: Readable): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => done(new Error(`bwrap did not report its sandbox within ${BOOT_TIMEOUT_MS} ms`)), BOOT_TIMEOUT_MS);
    const done = (err: Error | undefined, pid?: number): void => {
      clearTimeout(timer);
      info.removeAllListeners('data');
      info.removeAllListeners('end');
      info.on('error', () => undefined); // the fd closing with bwrap is expected; its exit reports why
      if (err) reject(err);
      else resolve(pid as number);
    };
    info.setEncoding('utf8');
    info.on('data', (chunk: string) => {
      text += chunk;
      const pid = /"child-pid"\s*:\s*(\d+)/.exec(text)?.[1];
      if (pid) done(undefined, Number(pid));
    });
    info.on('end', () => done(new Error(`bwrap exited before starting the sandbox${text ? `: ${text.slice(0, 200)}` : ''}`)));
    info.on('error', (err) => done(err));
  });
}

export class TimeoutError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`timed out after ${timeoutMs} ms`);
    this.name = 'TimeoutError';
  }
}
