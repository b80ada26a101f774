import { constants } from 'node:os';
import type { IPty } from 'node-pty';
import type { ProcessRequest } from '@kiln/proto/executor/process';
import type { Sandbox } from '../sandbox/sandbox.js';
import { InvalidArgumentError } from '../errors.js';
import { openTerminal, resizeTerminal, shellQuote, terminalCommand } from '../pty/terminal.js';
import type { ProcessExit } from './process.js';

/**
 * A background process on a terminal inside the sandbox (a PTY process of E2B's `pty.create`,
 * or a process started with `pty_cols`/`pty_rows`): the command runs under `script` on a pty of
 * the sandbox's own devpts, exactly like the interactive terminal (pty/terminal.ts says how),
 * so its output is one stream of terminal bytes and its input is typed into the terminal.
 */
export class TerminalProcess {
  readonly startedAt = Date.now();
  private readonly started = performance.now();
  private readonly term: IPty;
  private readonly listeners: ((data: Buffer) => void)[] = [];
  exit: ProcessExit | undefined;
  readonly exited: Promise<ProcessExit>;

  constructor(
    sandbox: Sandbox,
    readonly pid: number,
    readonly req: ProcessRequest,
  ) {
    if (!req.command) throw new InvalidArgumentError('command is required');
    const line = `exec ${[req.command, ...req.args].map(shellQuote).join(' ')}`;
    this.term = openTerminal(sandbox, req.ptyCols, req.ptyRows, req.env, terminalCommand(line), req.cwd || '/workspace');
    this.term.onData((d: string | Buffer) => {
      const data = typeof d === 'string' ? Buffer.from(d) : d;
      for (const fn of this.listeners) fn(data);
    });
    this.exited = new Promise((resolve) => {
      this.term.onExit(({ exitCode, signal }) => {
        this.exit = { exitCode, signal: signal ? signalNameOf(signal) : '', durationMs: performance.now() - this.started, timedOut: false, outOfMemory: false };
        resolve(this.exit);
      });
    });
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  onOutput(fn: (data: Buffer) => void): void {
    this.listeners.push(fn);
  }

  write(data: Uint8Array): void {
    if (this.running) this.term.write(Buffer.from(data));
  }

  resize(cols: number, rows: number): void {
    if (this.running) resizeTerminal(this.term, cols, rows);
  }

  pause(): void {
    this.term.pause();
  }

  resume(): void {
    this.term.resume();
  }

  /**
   * Signals the launcher: `script` and the command die with it (setpriv --pdeathsig, see
   * TERMINAL_COMMAND), and the command's terminal hangs up, as when a terminal closes.
   */
  signal(signal: NodeJS.Signals): void {
    if (!this.running) return;
    try {
      this.term.kill(signal);
    } catch {
      // Already gone; onExit reports how it ended.
    }
  }
}

function signalNameOf(n: number): string {
  return Object.entries(constants.signals).find(([, v]) => v === n)?.[0] ?? `SIG${n}`;
}
