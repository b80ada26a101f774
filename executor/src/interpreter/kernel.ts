import type { ProcessRequest } from '@kiln/proto/executor/process';
import type { SandboxProcess } from '../process/process.js';
import type { ProcessTable } from '../process/registry.js';
import type { Sandbox } from '../sandbox/sandbox.js';
import { KernelStartFailedError } from './errors.js';
import { LineSplitter } from './lines.js';

export type Language = 'python' | 'javascript';
export const LANGUAGES: readonly Language[] = ['python', 'javascript'];

/** What a driver (executor/runtime/interpreter/) says, one JSON object a line. */
export type DriverMessage =
  | { type: 'ready'; interruptPid: number }
  | { type: 'stdout' | 'stderr'; text: string }
  | { type: 'result'; data: Record<string, unknown>; main: boolean }
  | { type: 'error'; name: string; value: string; traceback: string }
  | { type: 'end'; executionCount: number; kernelRestarted: boolean };

/** A line from the driver longer than this is dropped (the execution is marked truncated). */
export const MAX_LINE_BYTES = 16 * 1024 * 1024;
const START_TIMEOUT_MS = 60_000;
const STDERR_TAIL = 4096;

/** The command that starts a language's driver, as seen inside the sandbox. */
function driverCommand(language: Language, memoryMB: number): string[] {
  if (language === 'python') return ['/usr/bin/python3', '-I', '-u', '/opt/kiln/runtime/interpreter/python_driver.py'];
  // --expose-internals: the kernel uses Node's own acorn and top-level-await rewrite (js-kernel.cjs says why).
  return ['/usr/bin/node', '--expose-internals', `--max-old-space-size=${Math.max(32, Math.floor(memoryMB * 0.75))}`, '/opt/kiln/runtime/interpreter/js-kernel.cjs'];
}

/**
 * Where kernels keep their runtime files: the sandbox's /tmp, never /workspace (the client's
 * files). Matplotlib's font cache is built there on first import.
 */
const KERNEL_ENV: Record<string, string> = {
  JUPYTER_RUNTIME_DIR: '/tmp/.kiln-jupyter',
  JUPYTER_PLATFORM_DIRS: '1',
  IPYTHONDIR: '/tmp/.kiln-ipython',
  MPLCONFIGDIR: '/tmp/.kiln-matplotlib',
  // Debian keeps matplotlibrc in /etc, which sandboxes do not see (bwrap-args.ts binds a few /etc
  // files only); this copy of the same defaults ships in /usr.
  MATPLOTLIBRC: '/usr/share/matplotlib/mpl-data/matplotlibrc',
  PYDEVD_DISABLE_FILE_VALIDATION: '1',
};

/**
 * One driver process inside a sandbox and the kernel it drives. It is a session process (it
 * counts with the session's processes and dies with the sandbox); the executor talks to it over
 * its stdin and stdout, and treats everything it says as untrusted input: lines are capped,
 * malformed ones become plain stdout text of the running execution.
 */
export class Kernel {
  readonly proc: SandboxProcess;
  /** Resolves once the driver said `ready`; rejects with KernelStartFailedError. */
  readonly ready: Promise<void>;
  /** Resolves when the driver's process is gone. */
  readonly gone: Promise<void>;
  interruptPid = 0;
  alive = true;
  private listener: ((m: DriverMessage) => void) | undefined;
  private overflowListener: (() => void) | undefined;
  private stderrTail = '';

  constructor(
    table: ProcessTable,
    sandbox: Sandbox,
    readonly language: Language,
    cwd: string,
    env: Record<string, string>,
  ) {
    const [command, ...args] = driverCommand(language, sandbox.spec.memoryMB) as [string, ...string[]];
    const req: ProcessRequest = { sandboxId: sandbox.id, command, args, cwd, env: { ...KERNEL_ENV, ...env }, stdin: Buffer.alloc(0), timeoutMs: 0, maxOutputBytes: 0, tag: '', keepStdin: false, ptyCols: 0, ptyRows: 0 };
    this.proc = table.start(sandbox, req, false, { openStdin: true });
    let readyResolve!: () => void;
    let readyReject!: (err: Error) => void;
    this.ready = new Promise<void>((resolve, reject) => {
      readyResolve = resolve;
      readyReject = reject;
    });
    // Observed here; callers await `ready` themselves and get the same rejection.
    this.ready.catch(() => undefined);
    const timer = setTimeout(() => {
      readyReject(new KernelStartFailedError(language, `no answer within ${START_TIMEOUT_MS} ms`));
      this.kill();
    }, START_TIMEOUT_MS);
    const lines = new LineSplitter(
      MAX_LINE_BYTES,
      (line) => {
        if (line === '') return;
        const msg = parse(line);
        if (msg?.type === 'ready') {
          // Taken once, at start: a cell that prints a `ready` line of its own later cannot
          // redirect interrupts (they are sent from inside the sandbox anyway, contexts.ts).
          if (this.interruptPid === 0) this.interruptPid = Number(msg.interruptPid) || -1;
          clearTimeout(timer);
          readyResolve();
        } else this.listener?.(msg ?? { type: 'stdout', text: `${line}\n` });
      },
      () => this.overflowListener?.(),
    );
    this.proc.child.stdout?.on('data', (d: Buffer) => lines.push(d));
    this.proc.child.stderr?.on('data', (d: Buffer) => {
      this.stderrTail = (this.stderrTail + d.toString('utf8')).slice(-STDERR_TAIL);
    });
    // 'exit', not the process's 'close': a kernel the driver started may keep the pipes open.
    this.gone = new Promise<void>((resolve) => {
      this.proc.child.once('exit', () => {
        this.alive = false;
        clearTimeout(timer);
        readyReject(new KernelStartFailedError(language, this.stderrTail.trim().split('\n').slice(-3).join('\n') || 'the driver exited'));
        resolve();
      });
    });
  }

  /** Where messages of the current execution go (one at a time). */
  listen(onMessage: ((m: DriverMessage) => void) | undefined, onOverflow?: () => void): void {
    this.listener = onMessage;
    this.overflowListener = onOverflow;
  }

  send(msg: Record<string, unknown>): void {
    this.proc.child.stdin?.write(`${JSON.stringify(msg)}\n`);
  }

  /** The driver's stderr tail, for an error that says why a kernel died. */
  get stderr(): string {
    return this.stderrTail;
  }

  /** Kills the driver's process group (its kernel dies with the driver or, at worst, with the sandbox). */
  kill(): void {
    this.proc.signal('SIGKILL');
  }
}

function parse(line: string): DriverMessage | undefined {
  try {
    const msg = JSON.parse(line) as DriverMessage;
    return msg && typeof msg === 'object' && typeof msg.type === 'string' ? msg : undefined;
  } catch {
    return undefined;
  }
}
