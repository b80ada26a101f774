import type { IncomingMessage } from 'node:http';
import type { MiddlewareHandler } from 'hono';
import { errorBody } from './errors.js';
import type { TokenBuckets } from './rate-limit.js';

/**
 * The rate of the public link routes (signed file URLs, GetFunction's code links), per client
 * address: they take no key, so the tenant's own rate cannot be counted before the link is
 * checked, and a flood of forged or replayed links must cost little. Each address gets `rps`
 * requests a second (burst `rps`) on this replica, in buckets of its own. The address is the
 * socket's peer: behind a proxy every client shares the proxy's bucket (X-Forwarded-For is not
 * believed, since anyone can send it).
 */
export function publicLinkRate(buckets: TokenBuckets, rps: number): MiddlewareHandler {
  return async (c, next) => {
    const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
    const address = incoming?.socket.remoteAddress ?? 'unknown';
    if (buckets.take(`link:${address}`, rps)) return next();
    c.header('Retry-After', '1');
    return c.json(errorBody('TooManyRequests', `more than ${rps} link requests a second from ${address}; retry after 1 s`, { retryAfterSeconds: 1, limit: rps }), 429);
  };
}
