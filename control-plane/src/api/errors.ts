import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { KilnError, unavailableOr } from '../errors.js';
import { log } from '../log.js';

/** The error body every endpoint returns: a stable code, a message that says what to change, data. */
export interface ErrorBody {
  error: { code: string; message: string; data?: Record<string, unknown> };
}

export function errorBody(code: string, message: string, data?: Record<string, unknown>): ErrorBody {
  return { error: { code, message, ...(data && Object.keys(data).length ? { data } : {}) } };
}

/** The one table from exceptions to HTTP responses. Unknown errors are our fault: 500, logged. */
export function onError(thrown: Error, c: Context): Response {
  const err = unavailableOr(thrown) as Error;
  if (err instanceof KilnError) {
    if (err.status === 429 || err.status === 503) c.header('Retry-After', String(typeof err.data.retryAfterSeconds === 'number' ? err.data.retryAfterSeconds : 1));
    return c.json(errorBody(err.code, err.message, err.data), err.status);
  }
  if (err instanceof HTTPException) {
    // Hono's JSON validator throws this for a body that does not parse.
    if (err.status === 400 && /malformed json/i.test(err.message)) return c.json(errorBody('InvalidJSON', 'request body is not valid JSON'), 400);
    return c.json(errorBody(err.status === 413 ? 'PayloadTooLarge' : 'HttpError', err.message || 'request rejected'), err.status);
  }
  // The client went away (or was cut for a body that stopped moving) while its body was read:
  // nobody is left to answer, and it is not a fault of ours.
  if ((err as NodeJS.ErrnoException).code === 'ECONNRESET' || err.message === 'aborted') {
    log('debug', 'request body cut short', { path: c.req.path });
    return c.json(errorBody('RequestAborted', 'the request body ended before it was complete'), 400);
  }
  log('error', 'unhandled error', { path: c.req.path, error: err.stack ?? err.message });
  return c.json(errorBody('InternalError', 'internal error; see the control plane log'), 500);
}
