import { once } from 'node:events';
import type { ServerReadableStream, ServerWritableStream } from '@grpc/grpc-js';
import { FilesService, type FileInfo, type FilesServer, type FileWriteRequest } from '@kiln/proto/executor/files';
import { decodeWriteRequest, encodeChunk } from '@kiln/proto/file-wire';
import type { ProcessRequest } from '@kiln/proto/executor/process';
import { InvalidArgumentError } from '../errors.js';
import { WorkspaceFiles } from '../files/ops.js';
import { insidePath } from '../files/paths.js';
import type { ProcessTable } from '../process/registry.js';
import type { SandboxManager } from '../sandbox/manager.js';
import { checkFillable, sealSyncedVolume, syncedVolumeAt } from '../sandbox/synced-volumes.js';
import type { Rpc } from './rpc.js';

const TAR_TIMEOUT_MS = 600_000;

/**
 * The Files service's definition with the data messages read and written without the generated
 * code's copies (file-wire.ts): the same wire format, so any gRPC client still speaks to it.
 */
export const FilesWireService: typeof FilesService = {
  ...FilesService,
  read: { ...FilesService.read, responseSerialize: encodeChunk },
  tarDownload: { ...FilesService.tarDownload, responseSerialize: encodeChunk },
  write: { ...FilesService.write, requestDeserialize: decodeWriteRequest },
  tarUpload: { ...FilesService.tarUpload, requestDeserialize: decodeWriteRequest },
};

/** Reads a client stream whose first message names the target, then yields the data chunks. */
async function headAndChunks(call: ServerReadableStream<FileWriteRequest, FileInfo>): Promise<{ head: FileWriteRequest; chunks: AsyncIterable<Uint8Array> }> {
  const it = call[Symbol.asyncIterator]() as AsyncIterator<FileWriteRequest>;
  const first = await it.next();
  if (first.done) throw new InvalidArgumentError('the write stream was empty; the first message must name sandboxId and path');
  const head = first.value;
  async function* chunks(): AsyncGenerator<Uint8Array> {
    if (head.data.length) yield head.data;
    if (head.end) return;
    for (;;) {
      const next = await it.next();
      // A cancelled call (the client went away mid-upload) may end like a finished one, and
      // `cancelled` may be set only after that end is seen: a stream is whole only when its
      // last message says so. Anything else is incomplete and must not become the file.
      if (call.cancelled) throw new InvalidArgumentError('the upload was cancelled before its end');
      if (next.done) throw new InvalidArgumentError('the upload was cut before its end');
      if (next.value.data.length) yield next.value.data;
      if (next.value.end) return;
    }
  }
  return { head, chunks: chunks() };
}

/** Writes chunks with backpressure: waits for 'drain' when grpc's buffer is full. */
async function pump(call: ServerWritableStream<unknown, { data: Uint8Array }>, source: AsyncIterable<Buffer>): Promise<void> {
  for await (const data of source) {
    if (call.cancelled) return;
    if (!call.write({ data })) await once(call, 'drain');
  }
}

/**
 * The Files service: files and tar archives under a session sandbox's /workspace. Host-side
 * operations resolve beneath the workspace without following links (files/ops.ts); tar runs
 * inside the sandbox as its user (through the process table), so archives can neither read nor
 * write past what the session itself can reach.
 */
/** tar inside the sandbox as its user, a foreground process bounded by TAR_TIMEOUT_MS. */
function tarRequest(sandboxId: string, args: string[]): ProcessRequest {
  return { sandboxId, command: 'tar', args, cwd: '', env: {}, stdin: Buffer.alloc(0), timeoutMs: TAR_TIMEOUT_MS, maxOutputBytes: 0, tag: '', keepStdin: false, ptyCols: 0, ptyRows: 0 };
}

export function filesService(rpc: Rpc, sandboxes: SandboxManager, processes: ProcessTable): FilesServer {
  const files = (sandboxId: string): WorkspaceFiles => new WorkspaceFiles(sandboxes.get(sandboxId).spec);
  return {
    read: rpc.serverStream(async (call) => pump(call, await files(call.request.sandboxId).readChunks(call.request.path, call.request.offset, call.request.length))),
    write: rpc.clientStream(async (call) => {
      const { head, chunks } = await headAndChunks(call);
      return files(head.sandboxId).write(head.path, chunks, head.mode || 0o644);
    }),
    list: rpc.unary(async (req) => ({ entries: await files(req.sandboxId).list(req.path) })),
    stat: rpc.unary((req) => files(req.sandboxId).stat(req.path)),
    mkdir: rpc.unary((req) => files(req.sandboxId).mkdir(req.path)),
    remove: rpc.unary(async (req) => ({ existed: await files(req.sandboxId).remove(req.path, req.recursive) })),
    rename: rpc.unary((req) => files(req.sandboxId).rename(req.from, req.to)),

    tarDownload: rpc.serverStream(async (call) => {
      const sandbox = sandboxes.get(call.request.sandboxId);
      // Only the string is checked here: tar itself resolves the path, inside the sandbox.
      // A synced volume's path as a whole (sandbox/synced-volumes.ts), or a path under /workspace.
      const inside = syncedVolumeAt(sandbox.spec, call.request.path) ? call.request.path : insidePath(call.request.path);
      const proc = processes.start(sandbox, tarRequest(sandbox.id, ['-c', '-C', inside, '.']), false);
      let stderr = '';
      proc.child.stderr?.on('data', (d: Buffer) => (stderr += d.toString().slice(0, 4096)));
      call.on('cancelled', () => proc.signal('SIGKILL'));
      if (proc.child.stdout) await pump(call, proc.child.stdout);
      const exit = await proc.exited;
      if (exit.exitCode !== 0) throw new InvalidArgumentError(`tar of ${inside} failed: ${stderr.trim() || `exit ${exit.exitCode}`}`, { path: inside });
    }),
    tarUpload: rpc.clientStream(async (call) => {
      const { head, chunks } = await headAndChunks(call);
      const sandbox = sandboxes.get(head.sandboxId);
      const volume = syncedVolumeAt(sandbox.spec, head.path);
      if (volume) checkFillable(sandbox, volume.path);
      const ws = new WorkspaceFiles(sandbox.spec);
      const dir = volume ? { path: volume.path } : await ws.mkdir(head.path);
      const proc = processes.start(sandbox, tarRequest(sandbox.id, ['-x', '--no-same-owner', '--no-same-permissions', '-C', dir.path, '-f', '-']), false, { openStdin: true });
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
      if (!volume) return ws.stat(dir.path);
      if (volume.readOnly) await sealSyncedVolume(sandbox, volume.path);
      return { path: volume.path, name: volume.path.slice(volume.path.lastIndexOf('/') + 1), type: 'dir', size: 0, mode: volume.readOnly ? 0o555 : 0o755, modifiedAtMs: Date.now(), symlinkTarget: '' };
    }),
  };
}
