import type { ProcessEvent, ProcessInfo, ProcessRequest } from '@kiln/proto/executor/process';
import type { Sandbox } from '../sandbox/sandbox.js';
import { InvalidArgumentError, ProcessNotFoundError } from '../errors.js';
import { TailBuffer } from './output.js';
import { SandboxProcess, outOfMemoryMessage, signalName, type ProcessExit } from './process.js';
import { TerminalProcess } from './terminal-process.js';

const TAIL_BYTES = 64 * 1024;
/** Finished background processes kept for listing, per sandbox. */
const KEEP_FINISHED = 100;
const MAX_TAG_LENGTH = 256;

/** Where streamed events go; `write` returns false when the consumer wants a pause. */
export interface EventSink {
  write(event: ProcessEvent): boolean;
  onDrain(fn: () => void): void;
  onCancel(fn: () => void): void;
}

/** Selects a process: by pid, or by tag when pid is 0. */
export interface Selector {
  pid: number;
  tag: string;
}

interface Entry {
  proc: SandboxProcess | TerminalProcess;
  stdout: TailBuffer;
  stderr: TailBuffer;
  background: boolean;
  /** Attached streams (Spawn, Attach): every output chunk and the exit event go to each. */
  sinks: Set<EventSink>;
}

export const processEvent = (pid: number, partial: Partial<ProcessEvent>): ProcessEvent => ({
  pid,
  stdout: Buffer.alloc(0),
  stderr: Buffer.alloc(0),
  exited: false,
  exitCode: 0,
  signal: '',
  durationMs: 0,
  truncated: false,
  timedOut: false,
  pty: Buffer.alloc(0),
  ...partial,
});

const exitEvent = (pid: number, exit: ProcessExit): ProcessEvent =>
  processEvent(pid, { exited: true, exitCode: exit.exitCode, signal: exit.signal, durationMs: exit.durationMs, timedOut: exit.timedOut });

/**
 * The processes of each sandbox, with session-local pids. Keyed weakly by the Sandbox object:
 * when the manager drops a destroyed sandbox, its table goes with it (its processes died with
 * the sandbox's PID namespace).
 *
 * Background processes keep the tail of their output and may have attached streams; a slow
 * stream pauses the process's output (as a full pipe would) until it drains.
 */
export class ProcessTable {
  private readonly bySandbox = new WeakMap<Sandbox, { next: number; entries: Map<number, Entry> }>();

  private table(sandbox: Sandbox): { next: number; entries: Map<number, Entry> } {
    let t = this.bySandbox.get(sandbox);
    if (!t) {
      t = { next: 1, entries: new Map() };
      this.bySandbox.set(sandbox, t);
    }
    return t;
  }

  /** Starts a process; foreground ones are forgotten when they exit. */
  start(sandbox: Sandbox, req: ProcessRequest, background: boolean, opts: { openStdin?: boolean } = {}): SandboxProcess {
    if (background) this.checkTag(sandbox, req.tag);
    const entry = this.add(sandbox, req, background, { openStdin: opts.openStdin || (background && req.keepStdin) });
    return entry.proc as SandboxProcess;
  }

  /** Tags name one running process of a sandbox. */
  private checkTag(sandbox: Sandbox, tag: string): void {
    if (tag.length > MAX_TAG_LENGTH || tag.includes('\0')) throw new InvalidArgumentError(`tag must be at most ${MAX_TAG_LENGTH} characters without NUL`, { tag: tag.slice(0, 300) });
    if (tag && [...this.table(sandbox).entries.values()].some((e) => e.proc.running && e.proc.req.tag === tag)) {
      throw new InvalidArgumentError(`a running process is already tagged "${tag}"; tags name one running process`, { tag });
    }
  }

  /** Starts a background process (on a terminal when the request sizes one) and attaches `sink` from its first byte. */
  spawn(sandbox: Sandbox, req: ProcessRequest, sink: EventSink): Promise<void> {
    this.checkTag(sandbox, req.tag);
    const entry = this.add(sandbox, req, true, { openStdin: req.keepStdin, pty: req.ptyCols > 0 && req.ptyRows > 0 }, sink);
    return this.follow(entry, sink);
  }

  /** Streams a background process's events from now on (a first one names its pid); settles when it exits or the sink is cancelled. */
  attach(sandbox: Sandbox, selector: Selector, sink: EventSink): Promise<void> {
    const entry = this.find(sandbox, selector);
    // First an event that names the pid, as Spawn's first one does.
    sink.write(processEvent(entry.proc.pid, {}));
    if (entry.proc.exit) {
      sink.write(exitEvent(entry.proc.pid, entry.proc.exit));
      return Promise.resolve();
    }
    entry.sinks.add(sink);
    return this.follow(entry, sink);
  }

  private follow(entry: Entry, sink: EventSink): Promise<void> {
    const resume = (): void => (entry.proc instanceof TerminalProcess ? entry.proc.resume() : [entry.proc.child.stdout, entry.proc.child.stderr].forEach((s) => s?.resume()));
    return new Promise((resolve) => {
      sink.onDrain(resume);
      sink.onCancel(() => {
        entry.sinks.delete(sink);
        // A stream that goes while full must not leave the process blocked on its output.
        resume();
        resolve();
      });
      void entry.proc.exited.then(() => resolve());
    });
  }

  private add(sandbox: Sandbox, req: ProcessRequest, background: boolean, opts: { openStdin?: boolean; pty?: boolean }, sink?: EventSink): Entry {
    const t = this.table(sandbox);
    const pid = t.next++;
    const proc = opts.pty ? new TerminalProcess(sandbox, pid, req) : new SandboxProcess(sandbox, pid, req, opts);
    const entry: Entry = { proc, stdout: new TailBuffer(TAIL_BYTES), stderr: new TailBuffer(TAIL_BYTES), background, sinks: new Set(sink ? [sink] : []) };
    t.entries.set(proc.pid, entry);
    // The first event names the pid, before any output.
    sink?.write(processEvent(pid, {}));
    if (background) {
      const pause = (): void => (proc instanceof TerminalProcess ? proc.pause() : [proc.child.stdout, proc.child.stderr].forEach((s) => s?.pause()));
      const forward = (which: 'stdout' | 'stderr' | 'pty') => (d: Buffer) => {
        (which === 'stderr' ? entry.stderr : entry.stdout).push(d);
        let full = false;
        for (const s of entry.sinks) if (!s.write(processEvent(pid, { [which]: d }))) full = true;
        if (full) pause();
      };
      if (proc instanceof TerminalProcess) proc.onOutput(forward('pty'));
      else {
        proc.child.stdout?.on('data', forward('stdout'));
        proc.child.stderr?.on('data', forward('stderr'));
      }
    }
    void proc.exited.then((exit) => {
      if (exit.outOfMemory) {
        const note = Buffer.from(outOfMemoryMessage(sandbox.spec.memoryMB));
        entry.stderr.push(note);
        for (const s of entry.sinks) s.write(processEvent(pid, { stderr: note }));
      }
      for (const s of entry.sinks) s.write(exitEvent(pid, exit));
      entry.sinks.clear();
      if (!background) t.entries.delete(proc.pid);
      const finished = [...t.entries.values()].filter((e) => !e.proc.running);
      for (const e of finished.slice(0, Math.max(0, finished.length - KEEP_FINISHED))) t.entries.delete(e.proc.pid);
    });
    return entry;
  }

  list(sandbox: Sandbox): ProcessInfo[] {
    return [...this.table(sandbox).entries.values()].map(info);
  }

  /** A background process by pid, or by tag when pid is 0 (the running one, else the newest). */
  private find(sandbox: Sandbox, selector: Selector): Entry {
    const entries = this.table(sandbox).entries;
    const entry = selector.pid
      ? entries.get(selector.pid)
      : selector.tag
        ? [...entries.values()].filter((e) => e.proc.req.tag === selector.tag).sort((a, b) => Number(b.proc.running) - Number(a.proc.running) || b.proc.pid - a.proc.pid)[0]
        : undefined;
    if (!entry || !entry.background) throw new ProcessNotFoundError(selector.pid, false, selector.tag);
    return entry;
  }

  private findRunning(sandbox: Sandbox, selector: Selector): Entry {
    const entry = this.find(sandbox, selector);
    if (!entry.proc.running) throw new ProcessNotFoundError(entry.proc.pid, true, selector.tag);
    return entry;
  }

  signal(sandbox: Sandbox, selector: Selector, signal: string): ProcessInfo {
    const name = signalName(signal || 'SIGTERM');
    const entry = this.findRunning(sandbox, selector);
    entry.proc.signal(name);
    return info(entry);
  }

  /** Types into a terminal process, or writes to (then maybe closes) the stdin of a pipe one. */
  input(sandbox: Sandbox, selector: Selector, data: Uint8Array, closeStdin: boolean): ProcessInfo {
    const entry = this.findRunning(sandbox, selector);
    const proc = entry.proc;
    if (proc instanceof TerminalProcess) {
      if (closeStdin) throw new InvalidArgumentError(`process ${proc.pid} runs on a terminal, whose input cannot be closed; send Ctrl-D (0x04) instead`, { pid: proc.pid });
      proc.write(data);
    } else {
      if (!proc.stdinOpen) throw new InvalidArgumentError(`the stdin of process ${proc.pid} is closed; start it with stdin kept open to send input`, { pid: proc.pid });
      if (data.length) proc.write(data);
      if (closeStdin) proc.closeStdin();
    }
    return info(entry);
  }

  resize(sandbox: Sandbox, selector: Selector, cols: number, rows: number): ProcessInfo {
    const entry = this.findRunning(sandbox, selector);
    if (!(entry.proc instanceof TerminalProcess)) throw new InvalidArgumentError(`process ${entry.proc.pid} has no terminal to resize`, { pid: entry.proc.pid });
    entry.proc.resize(cols, rows);
    return info(entry);
  }
}

function info(e: Entry): ProcessInfo {
  const req = e.proc.req;
  return {
    pid: e.proc.pid,
    command: req.command,
    args: req.args,
    running: e.proc.running,
    exitCode: e.proc.exit?.exitCode ?? 0,
    signal: e.proc.exit?.signal ?? '',
    startedAtMs: e.proc.startedAt,
    stdout: e.stdout.bytes(),
    stderr: e.stderr.bytes(),
    tag: req.tag,
    pty: e.proc instanceof TerminalProcess,
    env: req.env,
    cwd: req.cwd,
  };
}
