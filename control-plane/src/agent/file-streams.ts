import { constants, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import { H2Connection } from './h2-connection.js';
import { status } from '@grpc/grpc-js';
import { readErrorMetadata } from '@kiln/proto/error-metadata';
import { FileInfo, FilePathRequest, FileWriteRequest, type FileChunk } from '@kiln/proto/executor/files';
import { framedDataHeader, WRITE_DATA_FIELD } from '@kiln/proto/file-wire';
import { ChunkReader, MessageReader } from './grpc-messages.js';
import { codeForHttpStatus, grpcMessage, RpcError } from './unary.js';

/**
 * The executor's file streams (Files.Write, Read, TarUpload, TarDownload) on an HTTP/2
 * connection of their own, speaking gRPC's wire protocol directly, as unary.ts does for Invoke.
 *
 * Why not grpc-js: profiled moving 2 GB, the control plane spent most of its time copying and
 * collecting garbage in the per-message stack: gathering socket reads into 1 MB messages, the
 * generated encoder's two copies, grpc-js's framing copy, and the decoder's copy on the way back.
 * Here an upload chunk goes out as it came from the HTTP socket, behind an 11-byte header (no
 * copy), and a download chunk is a view of the HTTP/2 frame it arrived in (a copy only when a
 * message spans frames). The executor's server is still grpc-js, unchanged but for its codecs
 * (file-wire.ts), so the protocol, the `end` marker and the error trailers are the ones of the
 * generated clients.
 *
 * A connection of their own, too: a transfer's flow-control window then never holds up
 * another service's call, and a window of several MB (a few round trips per MB, not one per
 * 64 KB) costs nothing for the short calls.
 */

/** HTTP/2 stream and connection windows: bounds what is in flight per transfer. */
const WINDOW_BYTES = 8 * 1024 * 1024;
/** Largest DATA frame the executor may send us: fewer, larger reads on a download. */
const MAX_FRAME_BYTES = 1024 * 1024;
/** Upload bytes queued on the stream before the sender waits for them to leave. */
const MAX_QUEUED_BYTES = 1024 * 1024;

const METHOD = {
  read: '/kiln.executor.v1.Files/Read',
  write: '/kiln.executor.v1.Files/Write',
  tarDownload: '/kiln.executor.v1.Files/TarDownload',
  tarUpload: '/kiln.executor.v1.Files/TarUpload',
} as const;

/** One small message with its gRPC length prefix (a copy: only the first and last messages). */
function framed(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + message.byteLength);
  out[0] = 0;
  out.writeUInt32BE(message.byteLength, 1);
  out.set(message, 5);
  return out;
}

/**
 * A call's status once its stream has ended: undefined for OK, else the RpcError grpc-js would
 * give (the executor's error code and data from its trailers, as unary.ts reads them).
 */
function outcome(stream: ClientHttp2Stream, head: IncomingHttpHeaders, trailers: IncomingHttpHeaders | undefined, address: string): RpcError | undefined {
  // Trailers-only answers (errors) carry the status in the response headers.
  const end = trailers ?? head;
  const code = end['grpc-status'];
  if (code === undefined) {
    const httpStatus = Number(head[':status'] ?? 0);
    if (httpStatus && httpStatus !== 200) return new RpcError(codeForHttpStatus(httpStatus), `HTTP status ${httpStatus}`);
    if (stream.rstCode === constants.NGHTTP2_CANCEL) return new RpcError(status.CANCELLED, 'the call was cancelled');
    if (stream.rstCode === constants.NGHTTP2_ENHANCE_YOUR_CALM) return new RpcError(status.RESOURCE_EXHAUSTED, 'the server refused the load');
    return new RpcError(status.UNAVAILABLE, `the connection to ${address} ended the call (HTTP/2 code ${stream.rstCode ?? 0})`);
  }
  const grpcStatus: status = Number(code);
  if (grpcStatus === status.OK) return undefined;
  const failure = readErrorMetadata((key) => {
    const value = end[key];
    return Array.isArray(value) ? value[0] : value;
  });
  return new RpcError(grpcStatus, grpcMessage(end['grpc-message']), failure);
}

/** A client-streaming upload in progress (Files.Write or TarUpload). */
export interface UploadCall {
  /** Sends one chunk as one message, without copying it; false when the caller should wait for drained(). */
  write(chunk: Uint8Array): boolean;
  /** Resolves when the queued bytes have left, or the call has ended. */
  drained(): Promise<void>;
  /** Sends the message that marks the upload whole (`end`), and ends the stream. */
  end(): void;
  /** Cancels the call: the executor writes nothing. */
  cancel(): void;
  /** The executor's answer; rejects with an RpcError. */
  result: Promise<FileInfo>;
}

export class FileStreams {
  private inFlight = 0;
  private readonly connection: H2Connection;

  constructor(
    private readonly address: string,
    private readonly headers: Record<string, string>,
    private readonly maxMessageBytes: number,
    // As grpc-js's keepalive on the other channel: a busy executor may answer a ping late.
    private readonly keepalive = { intervalMs: 10_000, timeoutMs: 20_000 },
  ) {
    this.connection = new H2Connection(address, { settings: { enablePush: false, initialWindowSize: WINDOW_BYTES, maxFrameSize: MAX_FRAME_BYTES } }, keepalive, () => this.inFlight > 0, (session) => session.setLocalWindowSize(WINDOW_BYTES));
  }

  /** Starts an upload whose first message is `head` (sandbox, path, mode). */
  upload(kind: 'write' | 'tarUpload', head: FileWriteRequest): UploadCall {
    const stream = this.open(METHOD[kind]);
    let headers: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders | undefined;
    const body: Buffer[] = [];
    let settled = false;
    const result = new Promise<FileInfo>((resolve, reject) => {
      const settle = (): void => {
        if (settled) return;
        settled = true;
        const err = outcome(stream, headers, trailers, this.address);
        // An answer that came while we were still sending (a refusal) ends our side too, as
        // grpc-js does; the executor has stopped reading.
        if (!stream.closed) stream.close(err ? constants.NGHTTP2_CANCEL : constants.NGHTTP2_NO_ERROR);
        if (err) return reject(err);
        // Settled from stream events: a malformed answer (compressed, oversized) must reject, never throw there.
        try {
          const message = new MessageReader(this.maxMessageBytes).push(Buffer.concat(body))[0];
          if (!message) return reject(new RpcError(status.INTERNAL, 'the call ended OK without an answer'));
          resolve(FileInfo.decode(message));
        } catch (e) {
          reject(e instanceof RpcError ? e : new RpcError(status.INTERNAL, `could not decode the answer: ${(e as Error).message}`));
        }
      };
      stream.on('response', (h: IncomingHttpHeaders) => (headers = h));
      stream.on('trailers', (t: IncomingHttpHeaders) => (trailers = t));
      let received = 0;
      stream.on('data', (chunk: Buffer) => {
        // One small FileInfo is the whole answer: an executor sending more is cut off.
        if ((received += chunk.length) > this.maxMessageBytes + 5) {
          stream.close(constants.NGHTTP2_CANCEL);
          return;
        }
        body.push(chunk);
      });
      // The readable side ends after the answer and its trailers; a reset or a dropped
      // connection only closes the stream.
      stream.on('end', settle);
      stream.on('close', settle);
    });
    stream.write(framed(FileWriteRequest.encode(head).finish()));
    return {
      write: (chunk) => {
        stream.cork();
        stream.write(framedDataHeader(WRITE_DATA_FIELD, chunk.byteLength));
        stream.write(chunk);
        stream.uncork();
        return stream.writableLength < MAX_QUEUED_BYTES;
      },
      drained: () =>
        new Promise<void>((resolve) => {
          if (stream.closed || stream.destroyed || stream.writableLength < MAX_QUEUED_BYTES) return resolve();
          const done = (): void => {
            stream.off('drain', done);
            stream.off('close', done);
            resolve();
          };
          stream.on('drain', done);
          stream.on('close', done);
        }),
      end: () => {
        stream.end(framed(FileWriteRequest.encode({ sandboxId: '', path: '', data: Buffer.alloc(0), mode: 0, end: true }).finish()));
      },
      cancel: () => {
        if (!stream.closed) stream.close(constants.NGHTTP2_CANCEL);
      },
      result,
    };
  }

  /**
   * A server stream's chunks (Files.Read or TarDownload); errors are RpcErrors. Ending early
   * cancels it, and so does `signal`, even while a chunk is awaited (an async generator's own
   * return() waits for that chunk, which may never come).
   */
  async *read(kind: 'read' | 'tarDownload', req: FilePathRequest, signal?: AbortSignal): AsyncGenerator<FileChunk> {
    const stream = this.open(METHOD[kind]);
    const cancel = (): void => {
      if (!stream.closed) stream.close(constants.NGHTTP2_CANCEL);
    };
    signal?.addEventListener('abort', cancel, { once: true });
    stream.once('close', () => signal?.removeEventListener('abort', cancel));
    let headers: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders | undefined;
    stream.on('response', (h: IncomingHttpHeaders) => (headers = h));
    stream.on('trailers', (t: IncomingHttpHeaders) => (trailers = t));
    const closed = new Promise<void>((resolve) => stream.once('close', resolve));
    stream.end(framed(FilePathRequest.encode(req).finish()));
    const reader = new ChunkReader(this.maxMessageBytes);
    let complete = false;
    try {
      try {
        for await (const chunk of stream as AsyncIterable<Buffer>) {
          for (const data of reader.push(chunk)) yield { data };
        }
      } catch (err) {
        if (err instanceof RpcError) throw err;
        // A reset or a dropped connection: its status (below) says which.
      }
      if (!trailers) await closed;
      const err = outcome(stream, headers, trailers, this.address);
      if (err) throw err;
      if (reader.pending > 0) throw new RpcError(status.INTERNAL, 'the stream ended inside a message');
      complete = true;
    } finally {
      if (!complete && !stream.closed) stream.close(constants.NGHTTP2_CANCEL);
    }
  }

  close(): void {
    this.connection.close();
  }

  private open(path: string): ClientHttp2Stream {
    let stream: ClientHttp2Stream;
    try {
      stream = this.connection.get().request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...this.headers });
    } catch (err) {
      throw new RpcError(status.UNAVAILABLE, (err as Error).message);
    }
    this.inFlight++;
    // A stream error (a reset, the connection dropped) is followed by 'close', which decides.
    stream.on('error', () => undefined);
    stream.once('close', () => this.inFlight--);
    return stream;
  }
}
