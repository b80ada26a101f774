import { status, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import type {
  FileInfo,
  ProcessEvent,
  ProcessInfo,
  ProcessRequest,
  ProcessRunResponse,
  PtyInput,
  PtyOutput,
} from '@kiln/proto/executor';
import { ExecutorLostError, KilnError } from '../errors.js';
import { isExecutorGone, type Agent } from './client.js';

/**
 * How executor-side session error codes (gRPC metadata `kiln-error-code`) become HTTP
 * statuses. The one table for errors coming back from session RPCs.
 */
const SESSION_ERROR_STATUS: Record<string, KilnError['status']> = {
  PathOutsideWorkspace: 400,
  SymlinkNotFollowed: 400,
  InvalidRequest: 400,
  NotADirectory: 400,
  IsADirectory: 400,
  FileNotFound: 404,
  ProcessNotFound: 404,
  InvalidSignal: 400,
  NameTooLong: 400,
  FileExists: 409,
  DirectoryNotEmpty: 409,
  DiskQuotaExceeded: 413,
};

/** Maps a failed session RPC to a KilnError (client faults keep their executor code). */
export function sessionRpcError(err: unknown, executorId: string): Error {
  const e = err as ServiceError;
  const code = e?.metadata?.get('kiln-error-code')[0];
  if (typeof code === 'string') {
    let data: Record<string, unknown> = {};
    try {
      const raw = e.metadata.get('kiln-error-data-bin')[0];
      data = raw === undefined ? {} : (JSON.parse(Buffer.isBuffer(raw) ? raw.toString('utf8') : String(raw)) as Record<string, unknown>);
    } catch {
      // Malformed data is dropped; the code and message still say what went wrong.
    }
    return new KilnError(code, SESSION_ERROR_STATUS[code] ?? 500, e.details || e.message, data);
  }
  if (e?.code === status.NOT_FOUND) return new KilnError('SessionSandboxLost', 502, `the session's sandbox is gone from executor ${executorId}: ${e.details}`, { executorId });
  if (e?.code === status.INVALID_ARGUMENT) return new KilnError('InvalidRequest', 400, e.details || e.message);
  if (isExecutorGone(err)) return new ExecutorLostError(executorId, e.message);
  return err instanceof Error ? err : new Error(String(err));
}

const empty = Buffer.alloc(0);

/** Session RPCs of one sandbox on one executor, as promises and async iterables. */
export class SessionAgent {
  constructor(
    private readonly agent: Agent,
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
    return { sandboxId: this.sandboxId, args: [], cwd: '', env: {}, stdin: empty, timeoutMs: 0, maxOutputBytes: 0, ...p };
  }

  run(p: Partial<ProcessRequest> & { command: string }): Promise<ProcessRunResponse> {
    const { client, metadata } = this.agent.grpc;
    const req = this.request(p);
    return this.unary((cb, deadline) => client.processRun(req, metadata, { deadline }, cb), (req.timeoutMs || 300_000) + 10_000);
  }

  streamProcess(p: Partial<ProcessRequest> & { command: string }): AsyncGenerator<ProcessEvent> {
    const { client, metadata } = this.agent.grpc;
    return this.stream(client.processStream(this.request(p), metadata));
  }

  start(p: Partial<ProcessRequest> & { command: string }): Promise<ProcessInfo> {
    const { client, metadata } = this.agent.grpc;
    return this.unary((cb, deadline) => client.processStart(this.request(p), metadata, { deadline }, cb), 10_000);
  }

  listProcesses(): Promise<ProcessInfo[]> {
    const { client, metadata } = this.agent.grpc;
    return this.unary<{ processes: ProcessInfo[] }>((cb, deadline) => client.processList({ sandboxId: this.sandboxId }, metadata, { deadline }, cb), 10_000).then((r) => r.processes);
  }

  signal(pid: number, signal: string): Promise<ProcessInfo> {
    const { client, metadata } = this.agent.grpc;
    return this.unary((cb, deadline) => client.processSignal({ sandboxId: this.sandboxId, pid, signal }, metadata, { deadline }, cb), 10_000);
  }

  readFile(path: string): AsyncGenerator<{ data: Uint8Array }> {
    const { client, metadata } = this.agent.grpc;
    return this.stream(client.fileRead({ sandboxId: this.sandboxId, path }, metadata));
  }

  tarDownload(path: string): AsyncGenerator<{ data: Uint8Array }> {
    const { client, metadata } = this.agent.grpc;
    return this.stream(client.tarDownload({ sandboxId: this.sandboxId, path }, metadata));
  }

  /**
   * Streams `body` into a file (or a tar into a directory) with backpressure. The executor may
   * refuse the upload (a bad path, no space) while the body is still arriving: the answer is
   * watched from the start, the loop stops at once, and the rest of the body is left unread
   * (the HTTP server discards it), so a refusal is the caller's 4xx and never an unobserved
   * rejection.
   */
  async upload(kind: 'file' | 'tar', path: string, body: AsyncIterable<Uint8Array>, mode = 0): Promise<FileInfo> {
    const { client, metadata } = this.agent.grpc;
    let answered = false;
    let callback!: (err: ServiceError | null, res?: FileInfo) => void;
    const done = new Promise<FileInfo>((resolve, reject) => {
      callback = (err, res) => {
        answered = true;
        if (err) reject(sessionRpcError(err, this.executorId));
        else resolve(res as FileInfo);
      };
    });
    // Observed at once; `done` itself is returned (or awaited) below with its error.
    const settled = done.then(
      () => undefined,
      () => undefined,
    );
    const call = kind === 'file' ? client.fileWrite(metadata, callback) : client.tarUpload(metadata, callback);
    // The executor may refuse the upload (a bad path) while the body is still being read;
    // that rejection is reported by `return done` below (or dropped in favour of the body's
    // own failure), so it must not count as unhandled in the meantime.
    done.catch(() => undefined);
    try {
      call.write({ sandboxId: this.sandboxId, path, data: empty, mode });
      for await (const chunk of body) {
        if (answered) break;
        if (!call.write({ sandboxId: '', path: '', data: Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength), mode: 0 })) {
          await Promise.race([new Promise((r) => call.once('drain', r)), settled]);
        }
      }
      if (!answered) call.end();
    } catch (err) {
      call.cancel();
      await settled;
      // The executor's refusal, when there was one, says more than the body's own failure.
      if (answered) return done;
      throw err;
    }
    return done;
  }

  list(path: string): Promise<FileInfo[]> {
    const { client, metadata } = this.agent.grpc;
    return this.unary<{ entries: FileInfo[] }>((cb, deadline) => client.fileList({ sandboxId: this.sandboxId, path }, metadata, { deadline }, cb), 30_000).then((r) => r.entries);
  }

  stat(path: string): Promise<FileInfo> {
    const { client, metadata } = this.agent.grpc;
    return this.unary((cb, deadline) => client.fileStat({ sandboxId: this.sandboxId, path }, metadata, { deadline }, cb), 10_000);
  }

  mkdir(path: string): Promise<FileInfo> {
    const { client, metadata } = this.agent.grpc;
    return this.unary((cb, deadline) => client.fileMkdir({ sandboxId: this.sandboxId, path }, metadata, { deadline }, cb), 10_000);
  }

  remove(path: string, recursive: boolean): Promise<boolean> {
    const { client, metadata } = this.agent.grpc;
    return this.unary<{ existed: boolean }>((cb, deadline) => client.fileRemove({ sandboxId: this.sandboxId, path, recursive }, metadata, { deadline }, cb), 60_000).then((r) => r.existed);
  }

  rename(from: string, to: string): Promise<FileInfo> {
    const { client, metadata } = this.agent.grpc;
    return this.unary((cb, deadline) => client.fileRename({ sandboxId: this.sandboxId, from, to }, metadata, { deadline }, cb), 10_000);
  }

  /** Opens a terminal; the caller writes PtyInput (data or resize) and reads PtyOutput. */
  pty(cols: number, rows: number, env: Record<string, string>): { write(input: Partial<PtyInput>): void; end(): void; output: AsyncGenerator<PtyOutput> } {
    const { client, metadata } = this.agent.grpc;
    const call = client.pty(metadata);
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
