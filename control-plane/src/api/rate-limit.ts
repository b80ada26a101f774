import type { Context, MiddlewareHandler } from 'hono';
import type { AppEnv } from './router.js';
import type { Quotas } from '../tenancy/quotas.js';

/**
 * Token buckets by key, in this process's memory: each holds at most one second's worth of
 * tokens (`rate`) and refills at `rate` per second, so a client may burst up to its rate and
 * then keeps to it. Per replica by design: a shared counter would put a Redis round trip on
 * every request; N replicas behind a balancer let a tenant through at up to N times its rate.
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  /** Takes one token for `key`; true when there was one. */
  take(key: string, rate: number, now = performance.now()): boolean {
    if (rate <= 0) return false;
    let b = this.buckets.get(key);
    if (!b) {
      // Tenants come from keys, so this holds as many entries as tenants send requests; the
      // bound only guards against a bug that would key by something unbounded.
      if (this.buckets.size >= 100_000) this.buckets.clear();
      b = { tokens: rate, at: now };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(rate, b.tokens + ((now - b.at) / 1000) * rate);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}

/**
 * The `requestsPerSecond` quota of the request's tenant (after authentication: REST, the Lambda
 * API, MCP over HTTP). Over it: `QuotaExceeded`, answered by `refuse` in the surface's own
 * shape (429 with Retry-After; Lambda: TooManyRequestsException, Reason CallerRateLimitExceeded).
 */
export function rateLimit(quotas: Pick<Quotas, 'limits' | 'rateExceeded'>, buckets: TokenBuckets, refuse: (err: Error, c: Context) => Response): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const p = c.get('principal');
    // Public paths (health, the OpenAPI document) have no principal and no quota.
    if (!p) return next();
    let rate: number;
    try {
      rate = (await quotas.limits(p.tenant)).requestsPerSecond;
    } catch (err) {
      // Redis unreachable on a cache miss: the surface's own 503 (ServiceUnavailable / ServiceException).
      return refuse(err as Error, c);
    }
    if (buckets.take(p.tenant, rate)) return next();
    return refuse(quotas.rateExceeded(p.tenant, rate), c);
  };
}
