import { createHash } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import type { Redis } from 'ioredis';
import { idempotencyKey } from '../invocation/submit.js';
import type { Keys } from '../store/keys.js';
import { errorBody } from './errors.js';
import type { AppEnv } from './router.js';

/** How long a create's answer is kept for its key (Stripe keeps keys for 24 hours too). */
export const IDEMPOTENT_CREATE_TTL_SECONDS = 24 * 3600;
/** How long a key is held by a create that has not answered (a session waits for a sandbox). */
const PENDING_TTL_SECONDS = 600;

interface Entry {
  state: 'pending' | 'done';
  /** sha256 of the request: the route and its JSON body (keys sorted), so key order does not matter. */
  request: string;
  status?: number;
  body?: string;
}

/** JSON with object keys sorted at every level: the same body however a client orders it. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value as Record<string, unknown>)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

function requestHash(resource: string, text: string): string {
  let body = text;
  try {
    body = canonical(JSON.parse(text));
  } catch {
    // Not JSON: the route answers 400 and nothing is kept; hash the text as it is.
  }
  return createHash('sha256').update(`${resource}\n${body}`).digest('hex');
}

/**
 * `Idempotency-Key` on a create (POST /api/v1/sessions, /api/v1/functions): the first request
 * with a key runs and, when it succeeds (2xx), its answer is kept for 24 hours under the
 * tenant, the resource kind and the key; a repeat with the same body gets that answer again
 * (`Idempotent-Replayed: true`) and creates nothing, a repeat with another body is 422
 * `IdempotencyKeyReused`, and one while the first is still running is 409
 * `IdempotencyKeyInProgress` (retry). A failed create keeps nothing, so it can be retried with
 * the same key. Keys are per tenant: another tenant's identical key is another request.
 */
export function idempotentCreate(redis: Redis, keys: Keys, resource: string): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (c.req.method !== 'POST') return next();
    const raw = idempotencyKey(c.req.header('idempotency-key'), 'Idempotency-Key');
    const who = c.get('principal');
    if (raw === undefined || !who) return next();
    const key = keys.idempotentCreate(who.tenant, resource, createHash('sha256').update(raw).digest('hex'));
    const request = requestHash(resource, await c.req.text());
    const pending: Entry = { state: 'pending', request };
    if ((await redis.set(key, JSON.stringify(pending), 'EX', PENDING_TTL_SECONDS, 'NX')) !== 'OK') {
      const seen = await redis.get(key);
      const entry = seen ? (JSON.parse(seen) as Entry) : undefined;
      if (!entry) return c.json(errorBody('IdempotencyKeyInProgress', 'a request with this Idempotency-Key just ended; retry', { retryAfterSeconds: 1 }), 409, { 'retry-after': '1' });
      if (entry.request !== request) {
        return c.json(errorBody('IdempotencyKeyReused', `this Idempotency-Key was used for a different ${resource} request in the last ${IDEMPOTENT_CREATE_TTL_SECONDS / 3600} hours; use a new key for a new request`), 422);
      }
      if (entry.state === 'pending') return c.json(errorBody('IdempotencyKeyInProgress', 'a request with this Idempotency-Key is still running; retry once it has answered', { retryAfterSeconds: 1 }), 409, { 'retry-after': '1' });
      return new Response(entry.body ?? '', { status: entry.status ?? 200, headers: { 'content-type': 'application/json', 'idempotent-replayed': 'true' } });
    }
    let kept = false;
    try {
      await next();
      if (c.res.status >= 200 && c.res.status < 300) {
        const done: Entry = { state: 'done', request, status: c.res.status, body: await c.res.clone().text() };
        await redis.set(key, JSON.stringify(done), 'EX', IDEMPOTENT_CREATE_TTL_SECONDS);
        kept = true;
      }
    } finally {
      // A failed create (its 4xx/5xx, or a throw) keeps nothing: the same key may try again.
      if (!kept) await redis.del(key);
    }
  };
}
