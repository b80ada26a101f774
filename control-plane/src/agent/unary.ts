import { constants, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import { H2Connection } from './h2-connection.js';
import { status } from '@grpc/grpc-js';
import { readErrorMetadata, type ExecutorFailure } from '@kiln/proto/error-metadata';

/** A unary method as the generated service definition describes it (InvokeService.invoke). */
export interface UnaryMethod<Req, Res> {
  path: string;
  requestSerialize(value: Req): Buffer;
  responseDeserialize(bytes: Buffer): Res;
}

/**
 * A failed call, with the gRPC status code grpc-js would give (`code`, as in its ServiceError)
 * and the executor's error code and data when its trailers carried them (errors.ts rebuilds it).
 */
export class RpcError extends Error {
  constructor(
    readonly code: status,
    readonly details: string,
    readonly failure?: ExecutorFailure,
  ) {
    super(`${code} ${status[code]}: ${details}`);
    this.name = 'RpcError';
  }
}

/** The gRPC code for an HTTP status that came without one (the gRPC HTTP/2 spec's mapping). */
export function codeForHttpStatus(httpStatus: number): status {
  if (httpStatus === 400) return status.INTERNAL;
  if (httpStatus === 401) return status.UNAUTHENTICATED;
  if (httpStatus === 403) return status.PERMISSION_DENIED;
  if (httpStatus === 404) return status.UNIMPLEMENTED;
  if (httpStatus === 429 || httpStatus === 502 || httpStatus === 503 || httpStatus === 504) return status.UNAVAILABLE;
  return status.UNKNOWN;
}

/** The grpc-timeout header: at most 8 digits, so milliseconds up to about a day, then seconds. */
function grpcTimeout(ms: number): string {
  const whole = Math.max(1, Math.ceil(ms));
  return whole < 1e8 ? `${whole}m` : `${Math.ceil(whole / 1000)}S`;
}

/** grpc-message is percent-encoded; a server that sent it raw gets it back as it came. */
export function grpcMessage(value: string | string[] | undefined): string {
  const raw = String(value ?? '');
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/**
 * gRPC unary calls on one HTTP/2 connection, for the hot path (Invoke). Same wire protocol as
 * grpc-js, which the executor's server still is, without grpc-js's per-call stack (resolving,
 * retrying, load-balancing and subchannel calls, interceptors, filters): profiled under hot
 * load, that stack was 16% of the control plane's CPU; these calls cost about a third of it.
 * No retries, compression or load balancing: a call goes to one executor, and a failure is
 * the caller's to handle (ExecutorLost). A connection that drops fails its calls with
 * UNAVAILABLE and the next call opens a new one; every call has a deadline. While calls are
 * in flight the connection is pinged (as grpc-js's keepalive did): one that goes silent, as
 * across a network partition, is dropped instead of holding every call to its deadline.
 */
export class UnaryChannel {
  private inFlight = 0;
  private readonly connection: H2Connection;

  constructor(
    private readonly address: string,
    private readonly headers: Record<string, string>,
    private readonly maxMessageBytes: number,
    private readonly keepalive = { intervalMs: 10_000, timeoutMs: 5_000 },
  ) {
    this.connection = new H2Connection(address, { settings: { enablePush: false } }, keepalive, () => this.inFlight > 0);
  }

  call<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, timeoutMs: number): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      const message = method.requestSerialize(request);
      // Length-prefixed message: a compression flag (0) and the length, big-endian.
      const frame = Buffer.allocUnsafe(5 + message.length);
      frame.writeUInt8(0, 0);
      frame.writeUInt32BE(message.length, 1);
      message.copy(frame, 5);
      let stream: ClientHttp2Stream;
      try {
        stream = this.connection.get().request({
          ':method': 'POST',
          ':path': method.path,
          'content-type': 'application/grpc',
          te: 'trailers',
          'grpc-timeout': grpcTimeout(timeoutMs),
          ...this.headers,
        });
      } catch (err) {
        reject(new RpcError(status.UNAVAILABLE, (err as Error).message));
        return;
      }
      let settled = false;
      this.inFlight++;
      const settle = (err: RpcError | undefined, res?: Res): void => {
        if (settled) return;
        settled = true;
        this.inFlight--;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(res as Res);
      };
      const timer = setTimeout(() => {
        stream.close(constants.NGHTTP2_CANCEL);
        settle(new RpcError(status.DEADLINE_EXCEEDED, `Deadline exceeded after ${timeoutMs} ms`));
      }, timeoutMs);
      let head: IncomingHttpHeaders = {};
      let trailers: IncomingHttpHeaders | undefined;
      const chunks: Buffer[] = [];
      let received = 0;
      stream.on('response', (h: IncomingHttpHeaders) => {
        head = h;
      });
      stream.on('trailers', (t: IncomingHttpHeaders) => {
        trailers = t;
      });
      stream.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > this.maxMessageBytes + 5) {
          stream.close(constants.NGHTTP2_CANCEL);
          settle(new RpcError(status.RESOURCE_EXHAUSTED, `response larger than ${this.maxMessageBytes} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      // A stream error (the connection dropped, a reset) is followed by 'close', which decides.
      stream.on('error', () => undefined);
      stream.on('close', () => {
        // Trailers-only answers (errors) carry the status in the response headers.
        const end = trailers ?? head;
        const code = end['grpc-status'];
        if (code === undefined) {
          const httpStatus = Number(head[':status'] ?? 0);
          if (httpStatus && httpStatus !== 200) settle(new RpcError(codeForHttpStatus(httpStatus), `HTTP status ${httpStatus}`));
          // As grpc-js maps a reset without a status; anything else means the connection dropped.
          else if (stream.rstCode === constants.NGHTTP2_CANCEL) settle(new RpcError(status.CANCELLED, 'the call was cancelled by the server'));
          else if (stream.rstCode === constants.NGHTTP2_ENHANCE_YOUR_CALM) settle(new RpcError(status.RESOURCE_EXHAUSTED, 'the server refused the load'));
          else settle(new RpcError(status.UNAVAILABLE, `the connection to ${this.address} ended the call (HTTP/2 code ${stream.rstCode ?? 0})`));
          return;
        }
        const grpcStatus: status = Number(code);
        if (grpcStatus !== status.OK) {
          const failure = readErrorMetadata((key) => {
            const value = end[key];
            return Array.isArray(value) ? value[0] : value;
          });
          settle(new RpcError(grpcStatus, grpcMessage(end['grpc-message']), failure));
          return;
        }
        const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
        if (body.length < 5 || body[0] !== 0 || body.readUInt32BE(1) !== body.length - 5) {
          settle(new RpcError(status.INTERNAL, 'malformed or compressed response message'));
          return;
        }
        try {
          settle(undefined, method.responseDeserialize(body.subarray(5)));
        } catch (err) {
          settle(new RpcError(status.INTERNAL, `could not decode the response: ${(err as Error).message}`));
        }
      });
      stream.end(frame);
    });
  }

  close(): void {
    this.connection.close();
  }
}
