import { Code, ConnectError } from '@connectrpc/connect';
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { KilnError, unavailableOr } from '../../errors.js';
import { log } from '../../log.js';

/**
 * E2B's error shape, on its control API and the sandbox's HTTP routes: `{ code, message }` with
 * the HTTP status as `code`. The SDK picks its error class from the status (401
 * AuthenticationError, 404 NotFoundError, 429 RateLimitError, ...) and shows the message.
 */
export function e2bError(c: Context, status: number, message: string): Response {
  return c.json({ code: status, message }, status as 400);
}

/** Kiln's errors in E2B's shape: the one table for the E2B HTTP surfaces. */
export function onE2bError(thrown: Error, c: Context): Response {
  const err = unavailableOr(thrown) as Error;
  if (err instanceof KilnError) {
    if (err.status === 429 || err.status === 503) c.header('Retry-After', String(typeof err.data.retryAfterSeconds === 'number' ? err.data.retryAfterSeconds : 1));
    // A lost session's sandbox is gone: to E2B clients it no longer exists.
    return e2bError(c, err.status === 410 ? 404 : err.status, `${err.code}: ${err.message}`);
  }
  if (err instanceof HTTPException) {
    if (err.status === 400 && /malformed json/i.test(err.message)) return e2bError(c, 400, 'request body is not valid JSON');
    return e2bError(c, err.status, err.message || 'request rejected');
  }
  log('error', 'unhandled error', { path: c.req.path, error: err.stack ?? err.message });
  return e2bError(c, 500, 'internal error; see the control plane log');
}

const CONNECT_CODES: Record<number, Code> = {
  400: Code.InvalidArgument,
  401: Code.Unauthenticated,
  403: Code.PermissionDenied,
  404: Code.NotFound,
  409: Code.AlreadyExists,
  410: Code.Unavailable,
  413: Code.ResourceExhausted,
  429: Code.ResourceExhausted,
  502: Code.Unavailable,
  503: Code.Unavailable,
  504: Code.DeadlineExceeded,
};

/**
 * Kiln's errors as Connect errors, for the sandbox's Connect services: the SDK maps the code
 * (NotFound → NotFoundError, Unauthenticated → AuthenticationError, Unavailable → the sandbox
 * is gone, ...). Anything that is not a KilnError is our fault: Internal, logged.
 */
export function toConnectError(thrown: unknown): ConnectError {
  if (thrown instanceof ConnectError) return thrown;
  const err = unavailableOr(thrown);
  if (err instanceof KilnError) return new ConnectError(`${err.code}: ${err.message}`, CONNECT_CODES[err.status] ?? Code.Internal);
  log('error', 'unhandled error in an E2B sandbox RPC', { error: err instanceof Error ? (err.stack ?? err.message) : `${typeof thrown}: ${String(thrown)}` });
  return new ConnectError('internal error; see the control plane log', Code.Internal);
}
