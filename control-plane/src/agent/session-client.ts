import type { ClientReadableStream, ServiceError } from '@grpc/grpc-js';
import type { FileInfo } from '@kiln/proto/executor/files';
import type { ProcessEvent, ProcessInfo, ProcessRequest, ProcessRunResponse } from '@kiln/proto/executor/process';
import type { PtyInput, PtyOutput } from '@kiln/proto/executor/pty';
import { KilnError } from '../errors.js';
import type { Agent } from './client.js';
import { executorError, SandboxLostError } from './errors.js';

/**
 * A failed session RPC as the control plane's error (the one table, errors.ts), where a lost
 * sandbox is named for what it means to the caller: the session's sandbox is gone.
 */
export function sessionRpcError(err: unknown, executorId: string): Error {
  const rebuilt = executorError(err, executorId);
  if (rebuilt instanceof SandboxLostError) return new KilnError('SessionSandboxLost', 502, `the session's sandbox is gone: ${rebuilt.message}`, rebuilt.data);
  return rebuilt;
}

const empty = Buffer.alloc(0);

/** Session RPCs of one sandbox on one executor, as promises and async iterables. */
export class SessionAgent {
  constructor(
    /** The executor's agent: its other services (egress/, interpreter-client.ts) share its channel. */
    readonly agent: Agent,
    readonly sandboxId: string,
  ) {}

  private get executorId(): string {
    return this.agent.executor.id;
  }

  private unary<T>(fn: (cb: (err: ServiceError | null, res: T) => void, deadline: number) => void, timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      fn((err, res) => (err ? reject(sessionRpcError(err, this.executorId)) : resolve(res)), Date.now() + timeoutMs);
    });
  }

  /** Yields the messages of a server stream; errors are mapped like unary ones. */
  private async *stream<T>(call: ClientReadableStream<T>): AsyncGenerator<T> {
    try {
      for await (const msg of call) yield msg as T;
    } catch (err) {
      throw sessionRpcError(err, this.executorId);
    } finally {
      call.cancel();
    }
  }

  private request(p: Partial<ProcessRequest> & { command: string }): ProcessRequest {
    return { sandboxId: this.sandboxId, args: [], cwd: '', env: {}, stdin: empty, timeoutMs: 0, maxOutputBytes: 0, tag: '', keepStdin: false, ptyCols: 0, ptyRows: 0, ...p };
  }

  run(p: Partial<ProcessRequest> & { command: string }): Promise<ProcessRunResponse> {
    const { processes, metadata } = this.agent.grpc;
    const req = this.request(p);
    return this.unary((cb, deadline) => processes.run(req, metadata, { deadline }, cb), (req.timeoutMs || 300_000) + 10_000);
  }

  streamProcess(p: Partial<ProcessRequest> & { command: string }): AsyncGenerator<ProcessEvent> {
    const { processes, metadata } = this.agent.grpc;
    return this.stream(processes.stream(this.request(p), metadata));
  }

  start(p: Partial<ProcessRequest> & { command: string }): Promise<ProcessInfo> {
    const { processes, metadata } = this.agent.grpc;
    return this.unary((cb, deadline) => processes.start(this.request(p), metadata, { deadline }, cb), 10_000);
  }

  listProcesses(): Promise<ProcessInfo[]> {
    const { processes, metadata } = this.agent.grpc;
    return this.unary<{ processes: ProcessInfo[] }>((cb, deadline) => processes.list({ sandboxId: this.sandboxId }, metadata, { deadline }, cb), 10_000).then((r) => r.processes);
  }

  /** Signals a background process by pid, or by tag when pid is 0. */
  signal(pid: number, signal: string, tag = ''): Promise<ProcessInfo> {
    const { processes, metadata } = this.agent.grpc;
    return this.unary((cb, deadline) => processes.signal({ sandboxId: this.sandboxId, pid, signal, tag }, metadata, { deadline }, cb), 10_000);
  }

  /** Starts a background process and streams its events from its start; ending the stream leaves it running. */
  spawn(p: Partial<ProcessRequest> & { command: string }): AsyncGenerator<ProcessEvent> {
    const { processes, metadata } = this.agent.grpc;
    return this.stream(processes.spawn(this.request(p), metadata));
  }

  /** Streams a background process's events from now on (by pid, or by tag when pid is 0). */
  attach(pid: number, tag = ''): AsyncGenerator<ProcessEvent> {
    const { processes, metadata } = this.agent.grpc;
    return this.stream(processes.attach({ sandboxId: this.sandboxId, pid, tag }, metadata));
  }

  /** Writes to a background process's stdin (or terminal); `closeStdin` then ends its stdin. */
  input(pid: number, tag: string, data: Uint8Array, closeStdin = false): Promise<ProcessInfo> {
    const { processes, metadata } = this.agent.grpc;
    return this.unary((cb, deadline) => processes.input({ process: { sandboxId: this.sandboxId, pid, tag }, data: Buffer.from(data), closeStdin }, metadata, { deadline }, cb), 10_000);
  }

  resize(pid: number, tag: string, cols: number, rows: number): Promise<ProcessInfo> {
    const { processes, metadata } = this.agent.grpc;
    return this.unary((cb, deadline) => processes.resize({ process: { sandboxId: this.sandboxId, pid, tag }, cols, rows }, metadata, { deadline }, cb), 10_000);
  }

  /** A file's bytes; with `length` > 0, at most that many from `offset` (a Range request). */
  readFile(path: string, offset = 0, length = 0): AsyncGenerator<{ data: Uint8Array }> {
    return this.fileStream(this.agent.fileStreams.read('read', { sandboxId: this.sandboxId, path, offset, length }));
  }

  tarDownload(path: string, signal?: AbortSignal): AsyncGenerator<{ data: Uint8Array }> {
    return this.fileStream(this.agent.fileStreams.read('tarDownload', { sandboxId: this.sandboxId, path, offset: 0, length: 0 }, signal));
  }

  /** A file stream's chunks with its errors mapped like unary ones; ending early cancels it. */
  private async *fileStream<T>(source: AsyncGenerator<T>): AsyncGenerator<T> {
    try {
      yield* source;
    } catch (err) {
      throw sessionRpcError(err, this.executorId);
    }
  }

  /**
   * Streams `body` into a file (or a tar into a directory) with backpressure, each chunk as it
   * came (file-streams.ts sends it without a copy). The executor may refuse the upload (a bad
   * path, no space) while the body is still arriving: the answer is watched from the start, the
   * loop stops at once, and the rest of the body is left unread (the HTTP server discards it),
   * so a refusal is the caller's 4xx and never an unobserved rejection.
   */
  async upload(kind: 'file' | 'tar', path: string, body: AsyncIterable<Uint8Array>, mode = 0): Promise<FileInfo> {
    let answered = false;
    const call = this.agent.fileStreams.upload(kind === 'file' ? 'write' : 'tarUpload', { sandboxId: this.sandboxId, path, data: empty, mode, end: false });
    const done = call.result.then(
      (info) => {
        answered = true;
        return info;
      },
      (err: unknown) => {
        answered = true;
        throw sessionRpcError(err, this.executorId);
      },
    );
    // Observed at once; `done` itself is returned (or awaited) below with its error.
    const settled = done.then(
      () => undefined,
      () => undefined,
    );
    try {
      for await (const chunk of body) {
        if (answered) break;
        if (!call.write(chunk)) await Promise.race([call.drained(), settled]);
      }
      // Only a body read to its end is marked whole (the executor writes nothing otherwise).
      if (!answered) call.end();
    } catch (err) {
      // The executor's refusal, when it came before the body failed, says more than the body's
      // own failure; the CANCELLED our own cancel brings about says nothing (the client cut its
      // body: 400, not a 502).
      const refused = answered;
      call.cancel();
      await settled;
      if (refused) return done;
      throw err;
    }
    return done;
  }

  list(path: string): Promise<FileInfo[]> {
    const { files, metadata } = this.agent.grpc;
    return this.unary<{ entries: FileInfo[] }>((cb, deadline) => files.list({ sandboxId: this.sandboxId, path, offset: 0, length: 0 }, metadata, { deadline }, cb), 30_000).then((r) => r.entries);
  }

  stat(path: string): Promise<FileInfo> {
    const { files, metadata } = this.agent.grpc;
    return this.unary((cb, deadline) => files.stat({ sandboxId: this.sandboxId, path, offset: 0, length: 0 }, metadata, { deadline }, cb), 10_000);
  }

  mkdir(path: string): Promise<FileInfo> {
    const { files, metadata } = this.agent.grpc;
    return this.unary((cb, deadline) => files.mkdir({ sandboxId: this.sandboxId, path, offset: 0, length: 0 }, metadata, { deadline }, cb), 10_000);
  }

  remove(path: string, recursive: boolean): Promise<boolean> {
    const { files, metadata } = this.agent.grpc;
    return this.unary<{ existed: boolean }>((cb, deadline) => files.remove({ sandboxId: this.sandboxId, path, recursive }, metadata, { deadline }, cb), 60_000).then((r) => r.existed);
  }

  rename(from: string, to: string): Promise<FileInfo> {
    const { files, metadata } = this.agent.grpc;
    return this.unary((cb, deadline) => files.rename({ sandboxId: this.sandboxId, from, to }, metadata, { deadline }, cb), 10_000);
  }

  /** Opens a terminal; the caller writes PtyInput (data or resize) and reads PtyOutput. */
  pty(cols: number, rows: number, env: Record<string, string>): { write(input: Partial<PtyInput>): void; end(): void; output: AsyncGenerator<PtyOutput> } {
    const { pty, metadata } = this.agent.grpc;
    const call = pty.open(metadata);
    call.write({ sandboxId: this.sandboxId, data: empty, cols, rows, env });
    const output = (async function* (self: SessionAgent): AsyncGenerator<PtyOutput> {
      try {
        for await (const msg of call) yield msg as PtyOutput;
      } catch (err) {
        throw sessionRpcError(err, self.executorId);
      }
    })(this);
    return {
      write: (input) => call.write({ sandboxId: '', data: empty, cols: 0, rows: 0, env: {}, ...input }),
      end: () => call.end(),
      output,
    };
  }
}
