import { randomBytes } from 'node:crypto';
import type { CodeEvent, ContextInfo } from '@kiln/proto/executor/interpreter';
import { InvalidArgumentError } from '../errors.js';
import type { ProcessTable } from '../process/registry.js';
import type { Sandbox } from '../sandbox/sandbox.js';
import { ContextBusyError, ContextNotFoundError, TooManyContextsError } from './errors.js';
import { Kernel, LANGUAGES, type DriverMessage, type Language } from './kernel.js';

/** Contexts one sandbox may hold: each is a kernel process, and each Python kernel ~60 MB. */
export const MAX_CONTEXTS = 8;
/** Everything one execution may send back (text, bundles, tracebacks); the rest is dropped and the end says `truncated`. */
export const MAX_EXECUTION_OUTPUT_BYTES = 32 * 1024 * 1024;
export const DEFAULT_EXECUTION_TIMEOUT_MS = 300_000;
export const MAX_EXECUTION_TIMEOUT_MS = 3_600_000;
/** How long an interrupted (timed-out) execution may take to stop before its kernel is killed and restarted. */
const INTERRUPT_GRACE_MS = 3_000;
const CWD = /^\/[^\0]*$/;

interface Context {
  id: string;
  language: Language;
  cwd: string;
  env: Record<string, string>;
  createdAt: number;
  kernel: Kernel;
  executionCount: number;
  busy: boolean;
  /** Deleted while an execution ran: that execution must not start a kernel for it again. */
  deleted?: boolean;
  /** Started with the sandbox, before any session: the first default request gives it the session's env. */
  unclaimed?: boolean;
}

/** Where an execution's events go. */
export type CodeEventSink = (event: CodeEvent) => void;

/**
 * The code contexts of each sandbox: one kernel process each, created, restarted and deleted
 * here, and one execution at a time per context. Keyed weakly by the Sandbox (as the process
 * table is): a destroyed sandbox takes its contexts along, their processes died with its PID
 * namespace.
 */
export class ContextTable {
  private readonly bySandbox = new WeakMap<Sandbox, Map<string, Context>>();

  constructor(private readonly processes: ProcessTable) {}

  private contexts(sandbox: Sandbox): Map<string, Context> {
    let m = this.bySandbox.get(sandbox);
    if (!m) {
      m = new Map();
      this.bySandbox.set(sandbox, m);
    }
    return m;
  }

  private context(sandbox: Sandbox, id: string): Context {
    const ctx = this.contexts(sandbox).get(id);
    if (!ctx) throw new ContextNotFoundError(id);
    return ctx;
  }

  /**
   * Makes a context; with `asDefault`, answers with the oldest context of the language when
   * there is one. The context is in the table before its kernel is ready, so a concurrent
   * default request finds it (and waits for the same kernel) instead of making another.
   */
  async create(sandbox: Sandbox, language: string, cwd: string, env: Record<string, string>, asDefault = false, prestarted = false): Promise<ContextInfo> {
    if (!LANGUAGES.includes(language as Language)) throw new InvalidArgumentError(`language must be one of ${LANGUAGES.join(', ')}; got "${language.slice(0, 40)}"`, { language: language.slice(0, 40) });
    const dir = cwd || '/workspace';
    if (!CWD.test(dir) || dir.length > 4096) throw new InvalidArgumentError('cwd must be an absolute path inside the sandbox', { cwd: dir.slice(0, 300) });
    const all = this.contexts(sandbox);
    const existing = asDefault ? [...all.values()].filter((c) => c.language === language).sort((a, b) => a.createdAt - b.createdAt)[0] : undefined;
    if (existing) {
      if (existing.unclaimed) {
        existing.unclaimed = false;
        existing.env = env;
        // Applied by the kernel before any execution sent after it (one ordered channel).
        if (Object.keys(env).length > 0) existing.kernel.send({ type: 'env', env });
      }
      await existing.kernel.ready;
      return info(existing);
    }
    if (all.size >= MAX_CONTEXTS) throw new TooManyContextsError(MAX_CONTEXTS);
    const id = `ctx_${randomBytes(12).toString('hex')}`;
    const ctx: Context = { id, language: language as Language, cwd: dir, env, createdAt: Date.now(), kernel: new Kernel(this.processes, sandbox, language as Language, dir, env), executionCount: 0, busy: false, unclaimed: prestarted };
    all.set(id, ctx);
    try {
      await ctx.kernel.ready;
    } catch (err) {
      all.delete(id);
      ctx.kernel.kill();
      throw err;
    }
    return info(ctx);
  }

  /**
   * Starts a default context with the sandbox (template `interpreter.prestart`), not waited for.
   * A kernel that fails to start leaves no context: the first run makes one and reports why.
   */
  prestart(sandbox: Sandbox, language: string): void {
    this.create(sandbox, language, '', {}, true, true).then(
      () => undefined,
      (err: unknown) => process.stderr.write(`executor: sandbox ${sandbox.id}: the ${language} context started with it did not start: ${String(err)}\n`),
    );
  }

  list(sandbox: Sandbox): ContextInfo[] {
    return [...this.contexts(sandbox).values()].sort((a, b) => a.createdAt - b.createdAt).map(info);
  }

  async delete(sandbox: Sandbox, id: string): Promise<boolean> {
    const ctx = this.contexts(sandbox).get(id);
    if (!ctx) return false;
    this.contexts(sandbox).delete(id);
    ctx.deleted = true;
    await this.stop(sandbox, ctx.kernel);
    return true;
  }

  /** A new kernel in place of the old one: same id, language and cwd; no state. */
  async restart(sandbox: Sandbox, id: string): Promise<ContextInfo> {
    const ctx = this.context(sandbox, id);
    await this.replaceKernel(sandbox, ctx);
    await ctx.kernel.ready;
    return info(ctx);
  }

  async interrupt(sandbox: Sandbox, id: string): Promise<ContextInfo> {
    const ctx = this.context(sandbox, id);
    if (ctx.busy) await this.signalKernel(sandbox, ctx.kernel, 'INT');
    return info(ctx);
  }

  /**
   * Runs `code` in a context, sending its events to `sink` as they come and resolving after
   * the `end` event. `abort` (the caller hung up) interrupts it like a timeout does.
   */
  async execute(sandbox: Sandbox, id: string, code: string, timeoutMs: number, sink: CodeEventSink, abort?: AbortSignal): Promise<void> {
    const ctx = this.context(sandbox, id);
    if (timeoutMs > MAX_EXECUTION_TIMEOUT_MS) throw new InvalidArgumentError(`timeoutMs must be at most ${MAX_EXECUTION_TIMEOUT_MS}; got ${timeoutMs}`, { timeoutMs });
    if (ctx.busy) throw new ContextBusyError(id);
    ctx.busy = true;
    try {
      // A kernel that died since (its process exited) is started again first.
      if (!ctx.kernel.alive) await this.replaceKernel(sandbox, ctx);
      await ctx.kernel.ready;
      await this.run(sandbox, ctx, code, timeoutMs || DEFAULT_EXECUTION_TIMEOUT_MS, sink, abort);
    } finally {
      ctx.busy = false;
      ctx.kernel.listen(undefined);
    }
  }

  private async run(sandbox: Sandbox, ctx: Context, code: string, timeoutMs: number, sink: CodeEventSink, abort?: AbortSignal): Promise<void> {
    const started = performance.now();
    const kernel = ctx.kernel;
    let sent = 0;
    let truncated = false;
    let timedOut = false;
    const budget = (bytes: number): boolean => {
      if (sent + bytes > MAX_EXECUTION_OUTPUT_BYTES) {
        truncated = true;
        return false;
      }
      sent += bytes;
      return true;
    };
    const ended = new Promise<{ executionCount: number; restarted: boolean }>((resolve) => {
      kernel.listen(
        (m: DriverMessage) => {
          if (m.type === 'end') return resolve({ executionCount: Number(m.executionCount) || 0, restarted: Boolean(m.kernelRestarted) });
          const event = codeEvent(m);
          if (event && budget(eventBytes(event))) sink(event);
        },
        () => (truncated = true),
      );
      void kernel.gone.then(() => resolve({ executionCount: ctx.executionCount, restarted: true }));
    });
    let grace: NodeJS.Timeout | undefined;
    const stop = (why: 'timeout' | 'abort'): void => {
      if (why === 'timeout') timedOut = true;
      void this.signalKernel(sandbox, kernel, 'INT');
      // A cell that ignores the interrupt (a C loop, a handler that swallows it) loses its kernel.
      grace ??= setTimeout(() => kernel.kill(), INTERRUPT_GRACE_MS);
    };
    const timer = setTimeout(() => stop('timeout'), timeoutMs);
    const onAbort = (): void => stop('abort');
    abort?.addEventListener('abort', onAbort);
    kernel.send({ type: 'execute', code });
    const end = await ended;
    clearTimeout(timer);
    if (grace) clearTimeout(grace);
    abort?.removeEventListener('abort', onAbort);
    let restarted = end.restarted;
    if (!kernel.alive) {
      // The driver or its kernel died (killed after a timeout, out of memory, exit(); or the
      // context was restarted or deleted meanwhile): say so and, unless that already happened,
      // start a new one. A new kernel that fails to start shows at the next execution.
      restarted = true;
      const replaced = ctx.deleted || ctx.kernel !== kernel;
      const what = ctx.deleted ? 'the context was deleted during the execution' : replaced ? 'the context was restarted during the execution' : timedOut ? `the execution ran past ${timeoutMs} ms and did not stop when interrupted; the context was restarted and its state is lost` : `the ${ctx.language} kernel exited during the execution; the context was restarted and its state is lost`;
      sink({ error: { name: timedOut && !replaced ? 'TimeoutError' : 'ContextDied', value: what, traceback: replaced ? '' : kernel.stderr.slice(-2000) } });
      if (!replaced) await this.replaceKernel(sandbox, ctx).catch(() => undefined);
    } else if (timedOut) {
      sink({ error: { name: 'TimeoutError', value: `the execution ran past ${timeoutMs} ms and was interrupted`, traceback: '' } });
    }
    ctx.executionCount = restarted && !kernel.alive ? 0 : end.executionCount || ctx.executionCount;
    sink({ end: { executionCount: end.executionCount, timedOut, truncated, durationMs: performance.now() - started, contextRestarted: restarted } });
  }

  private async replaceKernel(sandbox: Sandbox, ctx: Context): Promise<void> {
    const old = ctx.kernel;
    ctx.kernel = new Kernel(this.processes, sandbox, ctx.language, ctx.cwd, ctx.env);
    ctx.executionCount = 0;
    await this.stop(sandbox, old);
  }

  /** Kills a kernel: its interpreter inside the sandbox first (a Jupyter kernel lives in its own process group), then the driver. */
  private async stop(sandbox: Sandbox, kernel: Kernel): Promise<void> {
    if (kernel.alive) await this.signalKernel(sandbox, kernel, 'KILL');
    kernel.kill();
    await kernel.gone;
  }

  /**
   * Signals the kernel's interpreter from inside the sandbox, as the sandbox's user: its pid is
   * one the driver reported in the sandbox's PID namespace, which means nothing on the host, and
   * a signal sent from inside cannot reach anything outside the sandbox whatever pid it names.
   */
  private async signalKernel(sandbox: Sandbox, kernel: Kernel, signal: 'INT' | 'KILL'): Promise<void> {
    const pid = kernel.interruptPid;
    if (!Number.isSafeInteger(pid) || pid <= 1) return;
    const proc = this.processes.start(sandbox, { sandboxId: sandbox.id, command: '/usr/bin/kill', args: [`-${signal}`, String(pid)], cwd: '', env: {}, stdin: Buffer.alloc(0), timeoutMs: 5_000, maxOutputBytes: 0, tag: '', keepStdin: false, ptyCols: 0, ptyRows: 0 }, false);
    await proc.exited;
  }
}

function info(ctx: Context): ContextInfo {
  return { id: ctx.id, language: ctx.language, cwd: ctx.cwd, busy: ctx.busy, executionCount: ctx.executionCount, createdAtMs: ctx.createdAt };
}

/** A driver's message as a CodeEvent, with its fields checked (the driver runs user code in-process). */
function codeEvent(m: DriverMessage): CodeEvent | undefined {
  switch (m.type) {
    case 'stdout':
      return { stdout: String(m.text ?? '') };
    case 'stderr':
      return { stderr: String(m.text ?? '') };
    case 'result':
      return m.data && typeof m.data === 'object' && !Array.isArray(m.data) ? { result: { dataJson: JSON.stringify(m.data), isMainResult: Boolean(m.main) } } : undefined;
    case 'error':
      return { error: { name: String(m.name ?? 'Error'), value: String(m.value ?? ''), traceback: String(m.traceback ?? '') } };
    default:
      return undefined;
  }
}

function eventBytes(e: CodeEvent): number {
  return (e.stdout?.length ?? 0) + (e.stderr?.length ?? 0) + (e.result?.dataJson.length ?? 0) + (e.error ? e.error.name.length + e.error.value.length + e.error.traceback.length : 0);
}
