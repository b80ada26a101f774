import type { IncomingMessage } from 'node:http';
import type { Context, MiddlewareHandler } from 'hono';
import { jsonTooDeep, tooDeep } from './json-depth.js';

/**
 * A size-limited body reader for routes that read their body as text or JSON, for the hot
 * routes under Node. Hono's `bodyLimit` and `c.req.json()` turn @hono/node-server's
 * lightweight request into a full Web `Request` (an AbortController, Headers, a web
 * ReadableStream over the socket), which cost more CPU per hot execution than the
 * scheduler. Here the body is read from Node's IncomingMessage into one Buffer and put in
 * Hono's body cache, so `c.req.text()`, `c.req.json()` and the JSON validator use it as is.
 *
 * Only for the requests `hot` picks, whose routes never read `c.req.raw.body` as a stream (it
 * is consumed here). Others, and any request outside Node (no `incoming` in the env), go
 * through `fallback`, the usual `bodyLimit`.
 */
export function textBody(opts: {
  maxBytes: number;
  tooLarge: (c: Context) => Response;
  fallback: MiddlewareHandler;
  hot: (method: string, path: string) => boolean;
  /**
   * Requests whose route streams the body on and counts it itself (uploads): Hono's
   * `bodyLimit` would read a chunked body whole before the route runs.
   */
  streamed: (method: string, path: string) => boolean;
}): MiddlewareHandler {
  const { maxBytes, tooLarge, fallback, hot, streamed } = opts;
  return async (c, next) => {
    if (streamed(c.req.method, c.req.path)) return next();
    const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
    if (!incoming || !hot(c.req.method, c.req.path) || incoming.readableEnded || incoming.readableDidRead) return fallback(c, next);
    const declared = Number(incoming.headers['content-length']);
    if (declared > maxBytes) return tooLarge(c);
    const body = await readAll(incoming, maxBytes);
    if (body === undefined) return tooLarge(c);
    const text = body.toString('utf8');
    if (jsonTooDeep(text)) return tooDeep(c);
    // Hono derives json() and the validator's input from the cached text (UTF-8, as JSON is).
    // Its cache holds promises at runtime although its type says values.
    (c.req.bodyCache as { text?: Promise<string> }).text = Promise.resolve(text);
    return next();
  };
}

/** The whole body, or undefined once it passes `maxBytes` (the rest is left unread). */
function readAll(incoming: IncomingMessage, maxBytes: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) {
        cleanup();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(chunks.length === 1 && chunks[0] ? chunks[0] : Buffer.concat(chunks, size));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const cleanup = (): void => {
      incoming.off('data', onData);
      incoming.off('end', onEnd);
      incoming.off('error', onError);
    };
    incoming.on('data', onData);
    incoming.on('end', onEnd);
    incoming.on('error', onError);
  });
}
