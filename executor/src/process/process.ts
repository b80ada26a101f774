import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import type { ProcessRequest } from '@kiln/proto/executor/process';
import type { Sandbox } from '../sandbox/sandbox.js';
import { InvalidArgumentError, InvalidSignalError } from '../errors.js';
import { HOST_ENV, sandboxArgv } from './command.js';

export interface ProcessExit {
  exitCode: number;
  signal: string;
  durationMs: number;
  timedOut: boolean;
  /** The kernel's OOM killer ended it: the sandbox's cgroup reached its memory limit. */
  outOfMemory: boolean;
}

/** Appended to a process's stderr when the OOM killer ended it, so the caller reads why. */
export function outOfMemoryMessage(memoryLimitMB: number): string {
  return `\nkiln: process killed by the kernel's OOM killer: the sandbox reached its memory limit of ${memoryLimitMB} MB (tmpfs files in /tmp and /dev/shm count)\n`;
}

/** Resolves a signal name (SIGTERM, TERM) or number to a name Node accepts. */
export function signalName(signal: string): NodeJS.Signals {
  const upper = signal.toUpperCase();
  const byNumber = /^\d{1,2}$/.test(signal) ? Object.entries(constants.signals).find(([, n]) => n === Number(signal))?.[0] : undefined;
  const name = byNumber ?? (upper.startsWith('SIG') ? upper : `SIG${upper}`);
  if (!(name in constants.signals)) throw new InvalidSignalError(signal);
  return name as NodeJS.Signals;
}

/**
 * Whether the OOM killer ended a process: it died of SIGKILL that no timeout sent, and the
 * sandbox's cgroup counted an OOM kill since it started. A cgroup file that cannot be read
 * (the sandbox is being destroyed) answers false: the exit status still says SIGKILL.
 */
async function killedByOom(sandbox: Sandbox, before: Promise<number> | undefined, exit: ProcessExit): Promise<boolean> {
  if (!before || exit.timedOut || exit.signal !== 'SIGKILL') return false;
  try {
    return (await sandbox.cgroup?.oomKills() ?? 0) > (await before);
  } catch {
    return false;
  }
}

/**
 * One command running inside a sandbox. It leads its own process group on the host, so a
 * signal or timeout reaches everything it started (unless it made its own session; those
 * still die with the sandbox's PID namespace).
 */
export class SandboxProcess {
  readonly child: ChildProcess;
  readonly startedAt = Date.now();
  private readonly started = performance.now();
  private timer: NodeJS.Timeout | undefined;
  private timedOut = false;
  exit: ProcessExit | undefined;
  readonly exited: Promise<ProcessExit>;

  constructor(
    sandbox: Sandbox,
    readonly pid: number,
    readonly req: ProcessRequest,
    opts: { openStdin?: boolean } = {},
  ) {
    if (!req.command) throw new InvalidArgumentError('command is required');
    const [file, ...args] = sandboxArgv(sandbox, [req.command, ...req.args], req.cwd, req.env);
    // OOM kills so far, to tell whether one during this process's life ended it.
    // Unreadable (the sandbox is going away) counts as "cannot tell", and the exit says SIGKILL.
    const oomBefore = sandbox.cgroup?.oomKills().catch(() => Number.MAX_SAFE_INTEGER);
    this.child = spawn(file as string, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
      env: HOST_ENV,
    });
    this.exited = new Promise((resolve) => {
      // 'close' waits for the pipes too, so no output is lost after the exit status.
      this.child.on('close', (code, signal) => {
        if (this.timer) clearTimeout(this.timer);
        const exit: ProcessExit = { exitCode: code ?? -1, signal: signal ?? '', durationMs: performance.now() - this.started, timedOut: this.timedOut, outOfMemory: false };
        void killedByOom(sandbox, oomBefore, exit).then((oom) => {
          this.exit = { ...exit, outOfMemory: oom };
          resolve(this.exit);
        });
      });
      this.child.on('error', () => {
        // spawn failures also emit 'close' with a code; nothing else to report here.
      });
    });
    this.child.stdin?.on('error', () => undefined); // EPIPE when the command ignores its stdin
    // An open stdin is fed by the caller (tar upload); otherwise it gets req.stdin and EOF.
    if (!opts.openStdin) this.child.stdin?.end(req.stdin.length > 0 ? Buffer.from(req.stdin) : undefined);
    else if (req.stdin.length > 0) this.child.stdin?.write(Buffer.from(req.stdin));
    if (req.timeoutMs > 0) {
      this.timer = setTimeout(() => {
        this.timedOut = true;
        this.signal('SIGKILL');
      }, req.timeoutMs);
    }
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /** Whether stdin still takes input (started with it open, not closed since). */
  get stdinOpen(): boolean {
    return this.running && !!this.child.stdin?.writable;
  }

  /** Writes to stdin (started with it open); false when it is closed or the process ended. */
  write(data: Uint8Array): boolean {
    if (!this.stdinOpen) return false;
    this.child.stdin?.write(Buffer.from(data));
    return true;
  }

  closeStdin(): void {
    this.child.stdin?.end();
  }

  /** Signals the whole process group; a no-op once it has exited. */
  signal(signal: NodeJS.Signals): void {
    if (!this.child.pid || !this.running) return;
    try {
      process.kill(-this.child.pid, signal);
    } catch {
      // Already gone; 'close' reports how it ended.
    }
  }
}
