import { StreamError } from '../errors.js';
import type { RequestOptions, Transport } from '../http.js';
import type { ProcessInfo, ProcessRequest, ProcessResult } from '../schema.js';
import { sseEvents } from '../sse.js';

export interface RunOptions extends RequestOptions {
  args?: string[];
  /** Run `command` as a bash command line (default true when no `args` are given). */
  shell?: boolean;
  cwd?: string;
  env?: Record<string, string>;
  /** Text written to stdin, then closed. */
  stdin?: string;
  /** Kills the process group after this long (server default 300000 for foreground runs). */
  timeoutMs?: number;
  /** Per-stream output cap (server default 1 MiB). */
  maxOutputBytes?: number;
  /** Called with each chunk of stdout as it arrives (the output is streamed then). */
  onStdout?: (data: string) => void;
  /** Called with each chunk of stderr as it arrives (the output is streamed then). */
  onStderr?: (data: string) => void;
}

export interface BackgroundOptions extends Omit<RunOptions, 'onStdout' | 'onStderr' | 'timeoutMs'> {
  background: true;
  /** A name to address it by instead of its pid; one running process per tag. */
  tag?: string;
  /** Keep stdin open for `handle.sendStdin`. */
  keepStdin?: boolean;
  timeoutMs?: number;
}

export interface CommandResult {
  pid: number;
  exitCode: number;
  signal: string;
  stdout: string;
  stderr: string;
  durationMs: number;
  truncated: boolean;
  timedOut: boolean;
}

/** The end of a process attached to: its exit code and signal. */
export interface CommandExit {
  exitCode: number;
  signal: string;
  durationMs: number;
}

/** A background process: stdin, signals, and its output from now on. */
export class CommandHandle {
  constructor(
    private readonly http: Transport,
    private readonly base: string,
    readonly info: ProcessInfo,
  ) {}
  get pid(): number {
    return this.info.pid;
  }
  private get ref(): string {
    return this.info.tag ? `tag:${this.info.tag}` : String(this.info.pid);
  }
  /** Writes to stdin (started with `keepStdin`); `close` sends EOF after it. */
  async sendStdin(data: string, opts: RequestOptions & { close?: boolean } = {}): Promise<ProcessInfo> {
    return this.http.json<ProcessInfo>('POST', `${this.base}/processes/${encodeURIComponent(this.ref)}/stdin`, { json: { data, close: opts.close ?? false }, signal: opts.signal });
  }
  /** Sends a signal to the process group (default SIGTERM). */
  async kill(signal = 'SIGTERM', opts: RequestOptions = {}): Promise<ProcessInfo> {
    return this.http.json<ProcessInfo>('POST', `${this.base}/processes/${this.info.pid}/signal`, { json: { signal }, signal: opts.signal });
  }
  /** Its output from now on, through the callbacks, until it exits. */
  async wait(opts: RequestOptions & Pick<RunOptions, 'onStdout' | 'onStderr'> = {}): Promise<CommandExit> {
    const res = await this.http.call('GET', `${this.base}/processes/${encodeURIComponent(this.ref)}/stream`, { signal: opts.signal, headers: { accept: 'text/event-stream' } });
    for await (const e of sseEvents(res.body as ReadableStream<Uint8Array>)) {
      const d = e.data as { data?: string } & CommandExit;
      if (e.event === 'stdout') opts.onStdout?.(d.data ?? '');
      else if (e.event === 'stderr' || e.event === 'pty') opts.onStderr?.(d.data ?? '');
      else if (e.event === 'exit') return { exitCode: d.exitCode, signal: d.signal, durationMs: d.durationMs };
    }
    throw new StreamError('StreamEnded', `the output stream of process ${this.info.pid} ended before it exited`);
  }
}

/** `session.commands`: run commands in the session's sandbox (E2B's `sandbox.commands`). */
export class Commands {
  constructor(
    private readonly http: Transport,
    private readonly base: string,
  ) {}

  /**
   * Runs a command. Without callbacks it returns when the command has finished; with `onStdout`
   * or `onStderr` the output is streamed to them as it comes; with `background: true` it
   * returns a handle at once.
   */
  run(command: string, opts: BackgroundOptions): Promise<CommandHandle>;
  run(command: string, opts?: RunOptions): Promise<CommandResult>;
  async run(command: string, opts: RunOptions | BackgroundOptions = {}): Promise<CommandResult | CommandHandle> {
    const request = this.request(command, opts);
    if ('background' in opts && opts.background) {
      const info = await this.http.json<ProcessInfo>('POST', `${this.base}/processes`, { json: { ...request, ...(opts.tag ? { tag: opts.tag } : {}), ...(opts.keepStdin ? { keepStdin: true } : {}) }, signal: opts.signal });
      return new CommandHandle(this.http, this.base, info);
    }
    const run = opts as RunOptions;
    if (!run.onStdout && !run.onStderr) {
      const r = await this.http.json<ProcessResult>('POST', `${this.base}/process/run`, { json: request, signal: opts.signal });
      return { pid: r.pid, exitCode: r.exitCode, signal: r.signal, stdout: r.stdout, stderr: r.stderr, durationMs: r.durationMs, truncated: r.truncated, timedOut: r.timedOut };
    }
    return this.stream(request, run);
  }

  /** The background processes, running or exited. */
  async list(opts: RequestOptions = {}): Promise<ProcessInfo[]> {
    return (await this.http.json<{ processes: ProcessInfo[] }>('GET', `${this.base}/processes`, { signal: opts.signal })).processes;
  }

  /** A handle on a background process by pid or tag, to attach to its output or signal it. */
  async connect(process: number | { tag: string }, opts: RequestOptions = {}): Promise<CommandHandle> {
    const found = (await this.list(opts)).find((p) => (typeof process === 'number' ? p.pid === process : p.tag === process.tag));
    if (!found) throw new StreamError('ProcessNotFound', `no background process ${typeof process === 'number' ? process : `tag:${process.tag}`} in this session`);
    return new CommandHandle(this.http, this.base, found);
  }

  private request(command: string, opts: RunOptions | BackgroundOptions): ProcessRequest {
    const shell = opts.shell ?? !opts.args?.length;
    return {
      command,
      ...(shell ? { shell: true } : { args: opts.args ?? [] }),
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      ...(opts.env ? { env: opts.env } : {}),
      ...(opts.stdin !== undefined ? { stdin: opts.stdin } : {}),
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
      ...(opts.maxOutputBytes !== undefined ? { maxOutputBytes: opts.maxOutputBytes } : {}),
    };
  }

  private async stream(request: ProcessRequest, opts: RunOptions): Promise<CommandResult> {
    const res = await this.http.call('POST', `${this.base}/process/stream`, { json: request, signal: opts.signal, headers: { accept: 'text/event-stream' } });
    let pid = 0;
    let stdout = '';
    let stderr = '';
    for await (const e of sseEvents(res.body as ReadableStream<Uint8Array>)) {
      const d = e.data as { pid?: number; data?: string; exitCode: number; signal: string; durationMs: number; truncated: boolean; timedOut: boolean };
      if (e.event === 'start') pid = d.pid ?? 0;
      else if (e.event === 'stdout') {
        stdout += d.data ?? '';
        opts.onStdout?.(d.data ?? '');
      } else if (e.event === 'stderr') {
        stderr += d.data ?? '';
        opts.onStderr?.(d.data ?? '');
      } else if (e.event === 'exit') return { pid, exitCode: d.exitCode, signal: d.signal, stdout, stderr, durationMs: d.durationMs, truncated: d.truncated, timedOut: d.timedOut };
    }
    throw new StreamError('StreamEnded', `the output stream of "${request.command}" ended before the process exited`);
  }
}
