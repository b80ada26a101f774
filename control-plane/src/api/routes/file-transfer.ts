import type { IncomingMessage } from 'node:http';
import type { FileInfo } from '@kiln/proto/executor/files';
import type { Context } from 'hono';
import type { SessionAgent } from '../../agent/session-client.js';
import { KilnError } from '../../errors.js';
import { errorBody } from '../errors.js';

/**
 * Moving one file between an HTTP request and a session's workspace, for the files routes and
 * signed file URLs alike. Nothing is buffered here: bytes go from the socket to the executor's
 * gRPC stream (and back) a chunk at a time, with backpressure both ways, so a file of gigabytes
 * costs the control plane the same memory as a small one.
 */

/** Upload chunks are sent to the executor in messages of about this size. */
const COALESCE_BYTES = 1024 * 1024;

/** One satisfiable byte range of a file, both ends included. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Reads a `Range` header against a file of `size` bytes (RFC 9110 §14.1.2): `undefined` when
 * there is none or it is not a bytes range (served whole, as the RFC allows); 'unsatisfiable' when
 * no byte of the file is asked for; one range otherwise. Several ranges are refused (416), as a
 * multipart/byteranges answer is not offered: clients that resume or slice ask for one.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | 'multiple' | undefined {
  if (!header) return undefined;
  const m = /^\s*bytes\s*=\s*(.*)$/i.exec(header);
  if (!m) return undefined;
  const specs = (m[1] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (specs.length > 1) return 'multiple';
  const spec = /^(\d*)-(\d*)$/.exec(specs[0] ?? '');
  if (!spec) return undefined;
  const [, a = '', b = ''] = spec;
  if (a === '' && b === '') return undefined;
  if (a === '') {
    // A suffix: the last N bytes.
    const n = Number(b);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  const end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  if (b !== '' && Number(b) < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}

/** A strong validator for a file as stat saw it: its size and modification time. */
export const etagOf = (f: FileInfo): string => `"${f.size.toString(16)}-${f.modifiedAtMs.toString(16)}"`;

/**
 * The request body as chunks, stopping with 413 once it passes `maxBytes`. A body that ends
 * before its Content-Length, or whose connection was cut (`complete` false: a chunked body
 * without its last chunk ends like a whole one on Node's side), is an error, never an upload.
 */
export async function* bodyChunks(body: AsyncIterable<Uint8Array> | null, maxBytes: number, declared?: number, complete: () => boolean = () => true): AsyncGenerator<Uint8Array> {
  if (!body) return;
  let size = 0;
  // The socket's reads (64 KB or less) are gathered into messages of up to 1 MB: a fraction of
  // the gRPC messages and executor writes per file, and still bounded memory.
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  for await (const value of body) {
    size += value.byteLength;
    if (size > maxBytes) throw new FileTooLargeError(maxBytes);
    pending.push(value);
    pendingBytes += value.byteLength;
    if (pendingBytes >= COALESCE_BYTES) {
      yield pending.length === 1 ? (pending[0] as Uint8Array) : Buffer.concat(pending);
      pending = [];
      pendingBytes = 0;
    }
  }
  if (pendingBytes > 0) yield pending.length === 1 ? (pending[0] as Uint8Array) : Buffer.concat(pending);
  if ((declared !== undefined && size < declared) || !complete()) {
    throw new KilnError('UploadIncomplete', 400, `the upload ended after ${size} bytes${declared === undefined ? ', before its end' : ` of the ${declared} its Content-Length declares`}`, { received: size });
  }
}

export class FileTooLargeError extends KilnError {
  constructor(maxBytes: number, declared?: number) {
    super(
      'PayloadTooLarge',
      413,
      declared === undefined
        ? `the upload is larger than ${maxBytes} bytes (KILN_MAX_FILE_BYTES)`
        : `the upload declares ${declared} bytes (Content-Length); at most ${maxBytes} are accepted (KILN_MAX_FILE_BYTES)`,
      { maxBytes, ...(declared === undefined ? {} : { declared }) },
    );
  }
}

/**
 * Streams a request body into a file (or a tar into a directory). A declared Content-Length over
 * the limit is refused before a byte is read; a chunked body is counted as it arrives. A body
 * cut short or over the limit leaves no partial file (the executor writes beside the target
 * and renames only a complete upload).
 */
export async function receive(agent: SessionAgent, kind: 'file' | 'tar', path: string, c: Context, maxBytes: number, mode = 0): Promise<FileInfo> {
  const header = c.req.header('content-length');
  const declared = header !== undefined && /^\d+$/.test(header) ? Number(header) : undefined;
  if (declared !== undefined && declared > maxBytes) throw new FileTooLargeError(maxBytes, declared);
  // Node's request itself when nothing has read it yet: its async iterator reads a chunk only
  // when the previous one is taken, whereas the web stream Hono wraps it in (Readable.toWeb, Node
  // 20) counts its high-water mark in chunks and would pull in gigabytes ahead of the executor.
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  const source = incoming && !incoming.readableDidRead ? (incoming as AsyncIterable<Uint8Array>) : (c.req.raw.body as AsyncIterable<Uint8Array> | null);
  return agent.upload(kind, path, bodyChunks(source, maxBytes, declared, () => incoming?.complete ?? true), mode);
}

/**
 * Streams a gRPC byte stream as a response body. The first chunk is awaited before the
 * response starts, so a missing file or a refused path is an HTTP error, not a cut stream.
 * With `length`, a stream that ends short of it (the file shrank under us) errors the body,
 * so the client sees a cut transfer rather than a short one it would take as complete.
 */
export async function streamed(source: AsyncGenerator<{ data: Uint8Array }>, type: string, opts: { status?: number; headers?: Record<string, string>; length?: number } = {}): Promise<Response> {
  const first = await source.next();
  let sent = 0;
  const finish = (controller: ReadableStreamDefaultController<Uint8Array>): void => {
    if (opts.length !== undefined && sent < opts.length) controller.error(new Error(`the file ended after ${sent} of ${opts.length} bytes`));
    else controller.close();
  };
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      if (first.done) finish(controller);
      else {
        sent += first.value.data.byteLength;
        controller.enqueue(first.value.data);
      }
    },
    async pull(controller) {
      if (first.done) return;
      try {
        const next = await source.next();
        if (next.done) finish(controller);
        else {
          sent += next.value.data.byteLength;
          controller.enqueue(next.value.data);
        }
      } catch (err) {
        controller.error(err);
      }
    },
    async cancel() {
      await source.return(undefined);
    },
  });
  const headers: Record<string, string> = { 'content-type': type, ...opts.headers };
  if (opts.length !== undefined) headers['content-length'] = String(opts.length);
  return new Response(body, { status: opts.status ?? 200, headers });
}

/**
 * A file as a response: 200 whole, 206 for one satisfiable `Range` (with `If-Range` honoured),
 * 416 with `Content-Range: bytes *\/size` otherwise. The size and validator come from a stat
 * just before the read; the read asks the executor for exactly those bytes, so a file that
 * grows meanwhile still matches Content-Length, and one that shrinks cuts the transfer.
 */
export async function send(agent: SessionAgent, path: string, req: Request, maxBytes: number): Promise<Response> {
  const info = await agent.stat(path);
  // Not a regular file (a directory, a link, a FIFO): the read names why, as a 4xx.
  if (info.type !== 'file') return streamed(agent.readFile(path), 'application/octet-stream');
  if (info.size > maxBytes) throw new KilnError('PayloadTooLarge', 413, `${info.path} is ${info.size} bytes; at most ${maxBytes} are sent (KILN_MAX_FILE_BYTES)`, { maxBytes, size: info.size });
  const etag = etagOf(info);
  const validators = { etag, 'last-modified': new Date(info.modifiedAtMs).toUTCString(), 'accept-ranges': 'bytes' };
  const ifRange = req.headers.get('if-range');
  const range = ifRange !== null && ifRange !== etag ? undefined : parseRange(req.headers.get('range') ?? undefined, info.size);
  if (range === 'unsatisfiable' || range === 'multiple') {
    const message = range === 'multiple' ? 'only one byte range may be asked for at a time' : `no byte of the range is inside the file's ${info.size} bytes`;
    return Response.json(errorBody('RangeNotSatisfiable', message, { size: info.size }), { status: 416, headers: { ...validators, 'content-range': `bytes */${info.size}` } });
  }
  // Nothing to read; and a read of length 0 would mean "to the end" (the file may have grown).
  if (info.size === 0) return new Response(new Uint8Array(0), { status: 200, headers: { 'content-type': 'application/octet-stream', 'content-length': '0', ...validators } });
  if (!range) return streamed(agent.readFile(path, 0, info.size), 'application/octet-stream', { headers: validators, length: info.size });
  const length = range.end - range.start + 1;
  return streamed(agent.readFile(path, range.start, length), 'application/octet-stream', {
    status: 206,
    length,
    headers: { ...validators, 'content-range': `bytes ${range.start}-${range.end}/${info.size}` },
  });
}
