import type { ProcessInfo, ProcessRequest } from '@kiln/proto/executor/process';
import type { Sandbox } from '../sandbox/sandbox.js';
import { ProcessNotFoundError } from '../errors.js';
import { TailBuffer } from './output.js';
import { SandboxProcess, outOfMemoryMessage, signalName } from './process.js';

const TAIL_BYTES = 64 * 1024;
/** Finished background processes kept for listing, per sandbox. */
const KEEP_FINISHED = 100;

interface Entry {
  proc: SandboxProcess;
  stdout: TailBuffer;
  stderr: TailBuffer;
  background: boolean;
}

/**
 * The processes of each sandbox, with session-local pids. Keyed weakly by the Sandbox object:
 * when the manager drops a destroyed sandbox, its table goes with it (its processes died with
 * the sandbox's PID namespace).
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
    const t = this.table(sandbox);
    const proc = new SandboxProcess(sandbox, t.next++, req, opts);
    const entry: Entry = { proc, stdout: new TailBuffer(TAIL_BYTES), stderr: new TailBuffer(TAIL_BYTES), background };
    t.entries.set(proc.pid, entry);
    if (background) {
      proc.child.stdout?.on('data', (d: Buffer) => entry.stdout.push(d));
      proc.child.stderr?.on('data', (d: Buffer) => entry.stderr.push(d));
    }
    void proc.exited.then((exit) => {
      if (exit.outOfMemory) entry.stderr.push(Buffer.from(outOfMemoryMessage(sandbox.spec.memoryMB)));
      if (!background) t.entries.delete(proc.pid);
      const finished = [...t.entries.values()].filter((e) => !e.proc.running);
      for (const e of finished.slice(0, Math.max(0, finished.length - KEEP_FINISHED))) t.entries.delete(e.proc.pid);
    });
    return proc;
  }

  list(sandbox: Sandbox): ProcessInfo[] {
    return [...this.table(sandbox).entries.values()].map(info);
  }

  signal(sandbox: Sandbox, pid: number, signal: string): ProcessInfo {
    const entry = this.table(sandbox).entries.get(pid);
    const name = signalName(signal || 'SIGTERM');
    if (!entry) throw new ProcessNotFoundError(pid);
    if (!entry.proc.running) throw new ProcessNotFoundError(pid, true);
    entry.proc.signal(name);
    return info(entry);
  }
}

function info(e: Entry): ProcessInfo {
  return {
    pid: e.proc.pid,
    command: e.proc.req.command,
    args: e.proc.req.args,
    running: e.proc.running,
    exitCode: e.proc.exit?.exitCode ?? 0,
    signal: e.proc.exit?.signal ?? '',
    startedAtMs: e.proc.startedAt,
    stdout: e.stdout.bytes(),
    stderr: e.stderr.bytes(),
  };
}
