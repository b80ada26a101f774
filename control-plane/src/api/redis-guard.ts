import type { MiddlewareHandler } from 'hono';
import type { Redis } from 'ioredis';
import { errorBody } from './errors.js';

/**
 * Fails API requests at once with 503 while the command connection to Redis is down. Without
 * it a request would hang: BullMQ's connections queue commands offline until Redis returns.
 * Health stays reachable so that it can report the outage itself.
 */
export function redisGuard(redis: Redis, exempt: string[] = ['/api/v1/health']): MiddlewareHandler {
  return async (c, next) => {
    if (redis.status !== 'ready' && !exempt.includes(c.req.path)) {
      c.header('Retry-After', '1');
      return c.json(errorBody('ServiceUnavailable', `Redis is unavailable (connection ${redis.status}); retry shortly`, { what: 'redis' }), 503);
    }
    await next();
  };
}
