import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { ErrorCode } from '@kiln/proto/executor/errors';
import { AgentError } from '../errors.js';
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

export class SandboxBootError extends AgentError {
  constructor(
    readonly sandboxId: string,
    message: string,
  ) {
    super(ErrorCode.ERROR_CODE_SANDBOX_BOOT_FAILED, `sandbox ${sandboxId} failed to boot: ${message}`, { sandboxId });
  }
}

/** The sandbox is booting, dead, or running another invocation: it takes one at a time. */
export class SandboxBusyError extends AgentError {
  constructor(
    readonly sandboxId: string,
    state: SandboxState,
  ) {
    super(ErrorCode.ERROR_CODE_SANDBOX_BUSY, `sandbox ${sandboxId} is ${state}; it runs one invocation at a time`, { sandboxId, state });
  }
}

/** The sandbox's runner holds another function version, and a runner loads only one. */
export class SandboxHasOtherFunctionError extends AgentError {
  constructor(readonly sandboxId: string) {
    super(ErrorCode.ERROR_CODE_SANDBOX_HAS_OTHER_FUNCTION, `sandbox ${sandboxId} holds another function`, { sandboxId });
  }
}

const BOOT_TIMEOUT_MS = 10_000;
const SECCOMP_PROGRAM = seccompProgram();

/**
 * A bubblewrap sandbox running one language runner. It owns the process tree: killing it
 * kills the process group, and bubblewrap's PID namespace takes every descendant with it.
 *
 * It also owns its state machine, which only its own methods move:
 *
 *     booting --boot--> idle --invocation--> busy --(work done)--> idle
 *        any --kill / exit--> dead
 *
 * One invocation at a time: {@link invocation} claims the idle sandbox (anything else is
 * {@link SandboxBusyError}), and {@link load} and {@link invoke} are only valid inside it. A
 * runner loads one function version for its life ({@link SandboxHasOtherFunctionError}).
 */
export class Sandbox {
  private current: SandboxState = 'booting';
  private loadedKey = '';
  readonly createdAt = Date.now();
  private bootedInMs = 0;
  private runnerPidValue = 0;
  private exitReasonText = '';
  /** Why the executor killed the sandbox, when it did (a protocol violation); it becomes the exit reason. */
  private killReason = '';

  private readonly child: ChildProcess;
  private readonly channel: RunnerChannel;
  private waiter: ((msg: RunnerMessage) => void) | undefined;
  private sink: LogSink | undefined;
  private readonly exitWaiters: Array<() => void> = [];
  /** Output written before any invocation (module init), handed to the load that follows. */
  private pendingInitLogs = '';
  private namespacePidValue = 0;
  private cgroupValue: SandboxCgroup | undefined;
  private frozen = false;
  private endFirstWork: () => void = () => undefined;
  /**
   * Settles when the sandbox's first invocation ends or it dies: what a cold start waits for is
   * done, and background work for the next boot (a spare workspace) no longer competes with it.
   */
  readonly firstWorkDone = new Promise<void>((resolve) => {
    this.endFirstWork = resolve;
  });

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

  /** The language runner it booted. */
  get runner(): string {
    return this.spec.runner;
  }

  get state(): SandboxState {
    return this.current;
  }

  /** Function version loaded into the runner; empty while warm. */
  get functionKey(): string {
    return this.loadedKey;
  }

  get bootMs(): number {
    return this.bootedInMs;
  }

  /** Host pid of the language runner (inside the PID namespace), for memory readings and nsenter. */
  get runnerPid(): number {
    return this.runnerPidValue;
  }

  /** Why the sandbox died; empty while it lives. */
  get exitReason(): string {
    return this.exitReasonText;
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  /**
   * Host pid of the sandbox's first process inside its namespaces (bwrap's init), from bwrap's
   * --info-fd. Session processes and boot steps enter the namespaces through it.
   */
  get namespacePid(): number {
    return this.namespacePidValue;
  }

  /**
   * The sandbox's cgroup (handed over by the cgroup boot step), which bounds memory, tasks and
   * CPU for everything in it; undefined where the executor cannot create cgroups.
   */
  get cgroup(): SandboxCgroup | undefined {
    return this.cgroupValue;
  }

  /**
   * Starts the sandbox and resolves once its runner says it is ready. `steps` run while bwrap
   * holds the sandbox before anything in it executes (cgroup, network, devpts): a step that fails
   * fails the boot, and nothing the sandbox runs ever sees the state before a step.
   */
  static async boot(spec: SandboxSpec, bwrapPath: string, steps: readonly BootStep[] = []): Promise<Sandbox> {
    const started = performance.now();
    const sandbox = new Sandbox(spec, bwrapPath);
    try {
      sandbox.namespacePidValue = await readChildPid(sandbox.child.stdio[INFO_FD] as Readable);
      // Side by side: each step only needs the namespaces (devpts waits for bwrap's mounts on its
      // own), and a cold start waits for the slowest, not the sum. All settle before a failure
      // is reported, so the manager's release never races an attach still in progress.
      const ctx = { spec, bwrapPid: sandbox.pid, namespacePid: sandbox.namespacePid, useCgroup: (cgroup: SandboxCgroup) => (sandbox.cgroupValue = cgroup) };
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
      sandbox.runnerPidValue = await sandbox.findRunnerPid();
    } catch (err) {
      sandbox.kill();
      throw new SandboxBootError(spec.id, `${(err as Error).message}${sandbox.pendingInitLogs ? `: ${sandbox.pendingInitLogs.trim().slice(-500)}` : ''}`);
    }
    sandbox.bootedInMs = performance.now() - started;
    // A runner that died between 'ready' and here stays dead.
    if (sandbox.current === 'booting') sandbox.current = 'idle';
    return sandbox;
  }

  /**
   * Runs `work` as the sandbox's one invocation: claims the idle sandbox (else
   * SandboxBusyError), routes its output to `sink` meanwhile, and makes it idle again after,
   * unless it died. {@link load} and {@link invoke} are valid only inside `work`.
   */
  async invocation<T>(sink: LogSink, work: () => Promise<T>): Promise<T> {
    if (this.current !== 'idle') throw new SandboxBusyError(this.id, this.current);
    this.current = 'busy';
    this.sink = sink;
    try {
      return await work();
    } finally {
      this.sink = undefined;
      if (this.current === 'busy') this.current = 'idle';
      this.endFirstWork();
    }
  }

  /**
   * Loads a function version into the runner (inside an invocation): hands the output of the
   * runner's own start-up to the invocation's sink first, sends `message`, and waits for
   * `loaded` or `loadError`. The sandbox holds `functionKey` from then on, whatever the reply:
   * after a loadError the caller kills it (Lambda does not reuse an instance whose init failed).
   */
  async load(functionKey: string, message: object, timeoutMs: number): Promise<RunnerMessage> {
    this.assertInvoking('load');
    if (this.loadedKey) throw new SandboxHasOtherFunctionError(this.id);
    if (this.pendingInitLogs) this.sink?.write('stdout', this.pendingInitLogs);
    this.pendingInitLogs = '';
    const reply = await this.request(message, timeoutMs, (m) => m.type === 'loaded' || m.type === 'loadError');
    this.loadedKey = functionKey;
    return reply;
  }

  /**
   * Sends one `invoke` message (already serialised, see lambda/invoke.ts) to the loaded runner
   * and waits for the `result` of `requestId`; rejects with TimeoutError after `timeoutMs`, or
   * when the sandbox dies. Valid only inside an invocation. `onChunk` gets the `chunk` messages
   * of this request (a streaming handler's body, PROTOCOL.md), in order, as they arrive.
   */
  invoke(line: string, requestId: string, timeoutMs: number, onChunk?: (msg: RunnerMessage) => void): Promise<RunnerMessage> {
    this.assertInvoking('invoke');
    if (!this.loadedKey) throw new Error(`sandbox ${this.id} has no function loaded to invoke`);
    return this.request(line, timeoutMs, (m) => {
      if (m.id !== requestId) return false;
      if (m.type === 'chunk') onChunk?.(m);
      return m.type === 'result';
    });
  }

  /**
   * Sends a message (if any; a string is sent as already-serialised JSON) and waits for the
   * runner's answer: the next message that `accept` takes (by default any that is not a log).
   * Anything else the runner sends meanwhile (a stale or forged `result` for another request,
   * a second answer) is dropped, so code in the sandbox cannot answer for a request it was not
   * given. Rejects when the sandbox dies or the timeout passes; log messages go to the sink.
   */
  private request(msg: object | string | undefined, timeoutMs: number, accept: (reply: RunnerMessage) => boolean = () => true): Promise<RunnerMessage> {
    if (this.current === 'dead') return Promise.reject(new Error(`sandbox is dead (${this.exitReason})`));
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

  /** Kills the whole sandbox; its exit makes it dead (asynchronously). */
  kill(): void {
    if (this.child.pid && this.current !== 'dead') {
      try {
        process.kill(-this.child.pid, 'SIGKILL');
      } catch {
        // Already gone: the 'exit' handler records why.
      }
    }
    // A v1-frozen task acts on SIGKILL only once thawed; the pending SIGKILL comes first then,
    // so nothing of the sandbox runs again. The cgroup step's release kills what is left anyway.
    if (this.frozen) {
      this.frozen = false;
      this.cgroup?.thaw().catch((err: unknown) => process.stderr.write(`sandbox ${this.id}: thaw after kill failed: ${String(err)}\n`));
    }
  }

  /** True between `pause` and `resume`: every process of the sandbox is frozen. */
  get paused(): boolean {
    return this.frozen;
  }

  /**
   * Freezes every process of the sandbox (its cgroup's freezer). They keep their memory, open
   * files and terminals; timers inside see the paused time pass at once when thawed.
   */
  async pause(): Promise<void> {
    const cgroup = this.cgroup;
    if (!cgroup?.canFreeze) throw new AgentError(ErrorCode.ERROR_CODE_FREEZE_UNSUPPORTED, `this executor cannot pause sandboxes: ${cgroup ? 'cgroup v1 without the freezer controller' : 'it has no cgroups'}`, { sandboxId: this.id });
    if (this.current === 'dead') throw new AgentError(ErrorCode.ERROR_CODE_SANDBOX_NOT_FOUND, `sandbox ${this.id} is dead`, { sandboxId: this.id });
    try {
      await cgroup.freeze();
    } catch (err) {
      // Half-frozen is no state to leave a sandbox in.
      await cgroup.thaw().catch(() => undefined /* the freeze error below says what failed */);
      throw err;
    }
    this.frozen = true;
  }

  /** Thaws a paused sandbox; one that is not paused is left as it is. */
  async resume(): Promise<void> {
    if (!this.frozen) return;
    await this.cgroup?.thaw();
    this.frozen = false;
  }

  /** Kills the sandbox and resolves once its process has exited. */
  async destroy(): Promise<void> {
    if (this.current === 'dead') return;
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

  /** A programming error, not a caller's: load and invoke belong inside `invocation`. */
  private assertInvoking(what: string): void {
    if (this.current !== 'busy') throw new Error(`sandbox ${this.id}: ${what} outside an invocation (state ${this.current})`);
  }

  private markDead(reason: string): void {
    if (this.current === 'dead') return;
    this.current = 'dead';
    this.exitReasonText = this.killReason ? `${this.killReason} (${reason})` : reason;
    this.channel.close();
    this.endFirstWork();
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
