import { once } from 'node:events';
import { status, type sendUnaryData, type ServerDuplexStream, type ServerReadableStream, type ServerWritableStream, type ServiceError } from '@grpc/grpc-js';
import type { AgentServer, FileInfo, FileWriteRequest, ProcessEvent, PtyInput, PtyOutput, SessionBindRequest, SessionBindResponse } from '@kiln/proto/executor';
import { WorkspaceFiles } from '../files/ops.js';
import { insidePath } from '../files/paths.js';
import { SessionBindError, sessionExports } from '../nfs/session-exports.js';
import { ProcessTable } from '../process/registry.js';
import { runProcess, streamProcess } from '../process/run.js';
import { openTerminal, resizeTerminal } from '../pty/terminal.js';
import type { SandboxManager } from '../sandbox/manager.js';
import { InvalidArgumentError, SessionOpError, sessionServiceError } from '../session/errors.js';
import { grpcError, isAuthorized, unary } from './auth.js';

type SessionRpcs = Pick<
  AgentServer,
  | 'processRun' | 'processStream' | 'processStart' | 'processList' | 'processSignal'
  | 'fileRead' | 'fileWrite' | 'fileList' | 'fileStat' | 'fileMkdir' | 'fileRemove' | 'fileRename'
  | 'tarDownload' | 'tarUpload' | 'pty' | 'sessionBind' | 'sessionUnbind'
>;

const TAR_TIMEOUT_MS = 600_000;

/** Reads a client stream whose first message names the target, then yields the data chunks. */
async function headAndChunks(call: ServerReadableStream<FileWriteRequest, FileInfo>): Promise<{ head: FileWriteRequest; chunks: AsyncIterable<Uint8Array> }> {
  const it = call[Symbol.asyncIterator]() as AsyncIterator<FileWriteRequest>;
  const first = await it.next();
  if (first.done) throw new InvalidArgumentError('the write stream was empty; the first message must name sandboxId and path');
  const head = first.value;
  async function* chunks(): AsyncGenerator<Uint8Array> {
    if (head.data.length) yield head.data;
    for (;;) {
      const next = await it.next();
      if (next.done) return;
      if (next.value.data.length) yield next.value.data;
    }
  }
  return { head, chunks: chunks() };
}

/**
 * The session RPCs: processes, files, tar and terminals inside a leased sandbox. Every handler
 * checks the agent token first and maps typed failures through `sessionServiceError`.
 */
export function sessionHandlers(token: string, sandboxes: SandboxManager, mapError: (err: unknown) => ServiceError): SessionRpcs {
  const processes = new ProcessTable();
  const fail = (err: unknown): ServiceError => sessionServiceError(err, mapError);
  const files = (sandboxId: string): WorkspaceFiles => new WorkspaceFiles(sandboxes.get(sandboxId).spec);
  const exportsTable = sessionExports(sandboxes);

  /** Binds a session to its sandbox for NFS; bad options and rebinding elsewhere are typed errors. */
  function bind({ sessionId, sandboxId, nfs }: SessionBindRequest): SessionBindResponse {
    try {
      exportsTable.bind(sessionId, sandboxId, { readOnly: nfs?.readOnly ?? false, allow: nfs?.allow ?? [] });
    } catch (err) {
      if (!(err instanceof SessionBindError)) throw err;
      if (err.reason === 'invalid') throw new InvalidArgumentError(err.message, { sessionId });
      throw new SessionOpError('SessionAlreadyBound', status.FAILED_PRECONDITION, err.message, { sessionId, sandboxId });
    }
    return { nfsPort: exportsTable.nfsPort, nfsExportTag: exportsTable.exportTag(sessionId) };
  }

  function serverStream<Req, Res>(handler: (call: ServerWritableStream<Req, Res>) => Promise<void>) {
    return (call: ServerWritableStream<Req, Res>): void => {
      if (!isAuthorized(call.metadata, token)) {
        call.emit('error', grpcError(status.UNAUTHENTICATED, 'missing or wrong agent token'));
        return;
      }
      handler(call).then(
        () => call.end(),
        (err: unknown) => call.emit('error', fail(err)),
      );
    };
  }

  function clientStream<Req, Res>(handler: (call: ServerReadableStream<Req, Res>) => Promise<Res>) {
    return (call: ServerReadableStream<Req, Res>, callback: sendUnaryData<Res>): void => {
      if (!isAuthorized(call.metadata, token)) {
        callback(grpcError(status.UNAUTHENTICATED, 'missing or wrong agent token'));
        return;
      }
      handler(call).then(
        (res) => callback(null, res),
        (err: unknown) => {
          // grpc-js holds a status back while a received message waits to be read, and a
          // refused upload stops reading: the client would get its error only once it had sent
          // the whole body. Reading on (and dropping) what still arrives lets it out at once.
          call.on('data', () => undefined);
          call.resume();
          callback(fail(err));
        },
      );
    };
  }

  /** Writes chunks with backpressure: waits for 'drain' when grpc's buffer is full. */
  async function pump(call: ServerWritableStream<unknown, { data: Uint8Array }>, source: AsyncIterable<Buffer>): Promise<void> {
    for await (const data of source) {
      if (call.cancelled) return;
      if (!call.write({ data })) await once(call, 'drain');
    }
  }

  return {
    // The Promise constructor turns a synchronous throw into a rejection, which `unary` maps.
    sessionBind: unary(token, (call) => new Promise((resolve) => resolve(bind(call.request))), fail),
    sessionUnbind: unary(token, (call) => Promise.resolve({ existed: exportsTable.unbind(call.request.sessionId) }), fail),
    processRun: unary(token, (call) => runProcess(processes, sandboxes.get(call.request.sandboxId), call.request), fail),
    processStream: serverStream(async (call) => {
      const sandbox = sandboxes.get(call.request.sandboxId);
      await streamProcess(processes, sandbox, call.request, {
        write: (event: ProcessEvent) => call.write(event),
        onDrain: (fn) => call.on('drain', fn),
        onCancel: (fn) => call.on('cancelled', fn),
      });
    }),
    processStart: unary(token, (call) => {
      const sandbox = sandboxes.get(call.request.sandboxId);
      const proc = processes.start(sandbox, call.request, true);
      return Promise.resolve(processes.list(sandbox).find((p) => p.pid === proc.pid) ?? { pid: proc.pid, command: call.request.command, args: call.request.args, running: true, exitCode: 0, signal: '', startedAtMs: proc.startedAt, stdout: Buffer.alloc(0), stderr: Buffer.alloc(0) });
    }, fail),
    processList: unary(token, (call) => Promise.resolve({ processes: processes.list(sandboxes.get(call.request.sandboxId)) }), fail),
    processSignal: unary(token, (call) => Promise.resolve(processes.signal(sandboxes.get(call.request.sandboxId), call.request.pid, call.request.signal)), fail),

    fileRead: serverStream(async (call) => pump(call, await files(call.request.sandboxId).read(call.request.path))),
    fileWrite: clientStream(async (call) => {
      const { head, chunks } = await headAndChunks(call);
      return files(head.sandboxId).write(head.path, chunks, head.mode || 0o644);
    }),
    fileList: unary(token, async (call) => ({ entries: await files(call.request.sandboxId).list(call.request.path) }), fail),
    fileStat: unary(token, (call) => files(call.request.sandboxId).stat(call.request.path), fail),
    fileMkdir: unary(token, (call) => files(call.request.sandboxId).mkdir(call.request.path), fail),
    fileRemove: unary(token, async (call) => ({ existed: await files(call.request.sandboxId).remove(call.request.path, call.request.recursive) }), fail),
    fileRename: unary(token, (call) => files(call.request.sandboxId).rename(call.request.from, call.request.to), fail),

    // tar runs inside the sandbox as its user, so archives can neither read nor write past
    // what the session itself can reach (no host-side path checks of archive members needed).
    tarDownload: serverStream(async (call) => {
      const sandbox = sandboxes.get(call.request.sandboxId);
      // Only the string is checked here: tar itself resolves the path, inside the sandbox.
      const inside = insidePath(call.request.path);
      const proc = processes.start(sandbox, { sandboxId: sandbox.id, command: 'tar', args: ['-c', '-C', inside, '.'], cwd: '', env: {}, stdin: Buffer.alloc(0), timeoutMs: TAR_TIMEOUT_MS, maxOutputBytes: 0 }, false);
      let stderr = '';
      proc.child.stderr?.on('data', (d: Buffer) => (stderr += d.toString().slice(0, 4096)));
      call.on('cancelled', () => proc.signal('SIGKILL'));
      if (proc.child.stdout) await pump(call, proc.child.stdout);
      const exit = await proc.exited;
      if (exit.exitCode !== 0) throw new InvalidArgumentError(`tar of ${inside} failed: ${stderr.trim() || `exit ${exit.exitCode}`}`, { path: inside });
    }),
    tarUpload: clientStream(async (call) => {
      const { head, chunks } = await headAndChunks(call);
      const sandbox = sandboxes.get(head.sandboxId);
      const ws = new WorkspaceFiles(sandbox.spec);
      const dir = await ws.mkdir(head.path);
      const proc = processes.start(sandbox, { sandboxId: sandbox.id, command: 'tar', args: ['-x', '--no-same-owner', '--no-same-permissions', '-C', dir.path, '-f', '-'], cwd: '', env: {}, stdin: Buffer.alloc(0), timeoutMs: TAR_TIMEOUT_MS, maxOutputBytes: 0 }, false, { openStdin: true });
      let stderr = '';
      proc.child.stderr?.on('data', (d: Buffer) => (stderr += d.toString().slice(0, 4096)));
      const stdin = proc.child.stdin;
      try {
        for await (const chunk of chunks) {
          if (!stdin || stdin.destroyed || !proc.running) break;
          if (!stdin.write(chunk)) await once(stdin, 'drain');
        }
      } finally {
        stdin?.end();
      }
      const exit = await proc.exited;
      if (exit.exitCode !== 0) throw new InvalidArgumentError(`extracting the tar into ${dir.path} failed: ${stderr.trim() || `exit ${exit.exitCode}`}`, { path: dir.path });
      return ws.stat(dir.path);
    }),

    pty: (call: ServerDuplexStream<PtyInput, PtyOutput>) => {
      if (!isAuthorized(call.metadata, token)) {
        call.emit('error', grpcError(status.UNAUTHENTICATED, 'missing or wrong agent token'));
        return;
      }
      let term: ReturnType<typeof openTerminal> | undefined;
      let done = false;
      const finish = (err?: unknown): void => {
        if (done) return;
        done = true;
        term?.kill('SIGKILL');
        if (err) call.emit('error', fail(err));
        else call.end();
      };
      call.on('data', (msg: PtyInput) => {
        try {
          if (!term) {
            const t = openTerminal(sandboxes.get(msg.sandboxId), msg.cols || 80, msg.rows || 24, msg.env);
            term = t;
            t.onData((d: string | Buffer) => {
              if (!done) call.write({ data: typeof d === 'string' ? Buffer.from(d) : d, exited: false, exitCode: 0 });
            });
            t.onExit(({ exitCode }) => {
              if (done) return;
              call.write({ data: Buffer.alloc(0), exited: true, exitCode });
              done = true;
              call.end();
            });
          } else if (msg.cols && msg.rows) resizeTerminal(term, msg.cols, msg.rows);
          if (msg.data.length) term.write(Buffer.from(msg.data));
        } catch (err) {
          finish(err);
        }
      });
      // The client hung up: the shell and everything it started in the terminal go too.
      call.on('end', () => finish());
      call.on('cancelled', () => finish());
      call.on('error', () => finish());
    },
  };
}
