import { InvokeStatus, type InvokeRequest, type InvokeResponse, type InvokeStreamEvent } from '@kiln/proto/executor/invoke';
import type { RunnerMessage } from '../sandbox/channel.js';
import type { Sandbox } from '../sandbox/sandbox.js';
import { invoke } from './invoke.js';

/** Lambda's limit on a streamed response (its documented 20 MB soft limit, counted here as a hard one). */
export const MAX_STREAMED_BYTES = 20 * 1024 * 1024;

const DEFAULT_CONTENT_TYPE = 'application/octet-stream';
/** Chunks that arrive together are sent as one event, up to this size. */
const COALESCE_MAX_BYTES = 1024 * 1024;

/**
 * One invocation whose response is read as it is written (InvokeStream): each `chunk` message of
 * the runner goes to `write` at once, nothing is gathered here. A handler that does not stream
 * has its result sent as one chunk, as Lambda's InvokeWithResponseStream does; the response
 * returned has an empty payload either way. Past MAX_STREAMED_BYTES the sandbox is killed (the
 * handler could otherwise write until its timeout) and the invocation fails with
 * Function.ResponseSizeTooLarge; what was sent before stays sent. Chunks come from inside the
 * sandbox: only the base64 `data` of the current request's messages is taken (sandbox.ts checks
 * the id), and a content type is a short printable string or the default. Chunks that arrive in
 * one turn of the event loop go out as one event (flushed on the next turn, so no latency is
 * added): a handler writing a byte at a time would otherwise make every hop on the way (gRPC,
 * Redis, the client's event stream) pay per byte, a cheap way to load the shared control plane.
 */
export async function invokeStreaming(sandbox: Sandbox, req: InvokeRequest, write: (event: InvokeStreamEvent) => void): Promise<InvokeResponse> {
  let bytes = 0;
  let first = true;
  let overflow = false;
  let contentType: unknown;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let scheduled = false;
  const send = (chunk: Buffer, type: unknown): void => {
    write({ chunk, contentType: first ? contentTypeOf(type) : '', done: undefined });
    first = false;
  };
  const flush = (): void => {
    scheduled = false;
    if (!pending.length) return;
    const chunk = pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending);
    pending = [];
    pendingBytes = 0;
    send(chunk, contentType);
  };
  const onChunk = (msg: RunnerMessage): void => {
    if (overflow || typeof msg.data !== 'string') return;
    if (first && contentType === undefined) contentType = msg.contentType;
    const chunk = Buffer.from(msg.data, 'base64');
    if (!chunk.length) return;
    bytes += chunk.length;
    if (bytes > MAX_STREAMED_BYTES) {
      overflow = true;
      pending = [];
      sandbox.kill();
      return;
    }
    pending.push(chunk);
    pendingBytes += chunk.length;
    if (pendingBytes >= COALESCE_MAX_BYTES) flush();
    else if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  };
  const res = await invoke(sandbox, req, onChunk);
  flush();
  if (overflow) {
    const error = { errorType: 'Function.ResponseSizeTooLarge', errorMessage: `Response payload size exceeded maximum allowed payload size (${MAX_STREAMED_BYTES} bytes).`, stackTrace: [] };
    return { ...res, status: InvokeStatus.INVOKE_STATUS_FAILED, error, payload: Buffer.alloc(0), raw: false };
  }
  if (res.status === InvokeStatus.INVOKE_STATUS_SUCCEEDED && res.payload.length > 0) {
    send(Buffer.from(res.payload), res.raw ? DEFAULT_CONTENT_TYPE : 'application/json');
  }
  return { ...res, payload: Buffer.alloc(0), raw: false };
}

function contentTypeOf(value: unknown): string {
  return typeof value === 'string' && value.length > 0 && value.length <= 256 && /^[\x20-\x7e]+$/.test(value) ? value : DEFAULT_CONTENT_TYPE;
}
