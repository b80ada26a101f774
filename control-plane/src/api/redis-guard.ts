import type { MiddlewareHandler } from 'hono';
import type { Redis } from 'ioredis';
import { ServiceUnavailableError } from '../errors.js';

/** The outage as an error, while the command connection to Redis is not ready; else undefined. */
export function redisOutage(redis: Redis): ServiceUnavailableError | undefined {
  return redis.status === 'ready' ? undefined : new ServiceUnavailableError('redis', `connection ${redis.status}`);
}

/**
 * Fails requests at once while the command connection to Redis is down, by throwing the
 * outage to the surface's own error table (REST 503 ServiceUnavailable, Lambda 503
 * ServiceException). Without it a request would hang: BullMQ's connections queue commands
 * offline until Redis returns. Health stays reachable so that it can report the outage itself.
 */
export function redisGuard(redis: Redis, exempt: string[] = ['/api/v1/health']): MiddlewareHandler {
  return async (c, next) => {
    const outage = exempt.includes(c.req.path) ? undefined : redisOutage(redis);
    if (outage) throw outage;
    await next();
  };
}
