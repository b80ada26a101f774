import { Redis, type RedisOptions } from 'ioredis';

/** Where Redis is: a URL (redis://, rediss://) or a unix socket path. */
export type RedisTarget = { url: string } | { socket: string };

/** KILN_REDIS_URL → target; `unix:///path/redis.sock` means a unix socket. */
export function redisTarget(url: string): RedisTarget {
  return url.startsWith('unix://') ? { socket: new URL(url).pathname } : { url };
}

/**
 * Connection for request-path commands: no offline queue, so that when Redis is down a
 * request fails at once (503) instead of hanging until it returns. Auto-pipelining sends the
 * commands of concurrent requests issued in one event-loop tick (leases, releases) as one
 * write, which under load saves a syscall and a Redis read per command. It never carries
 * blocking commands or subscriptions: those have their own connections.
 */
export function commandConnection(target: RedisTarget): Redis {
  return connect(target, { enableOfflineQueue: false, maxRetriesPerRequest: 1, enableAutoPipelining: true });
}

/**
 * The two connections of client-side caching (redis/tracked-reads.ts): the reader, which fails
 * fast like the command connection, and the one invalidations are redirected to, which must not
 * resubscribe by itself (TrackedReads does it, after asking its new id).
 */
export function trackingConnections(target: RedisTarget): { reader: Redis; invalidations: Redis } {
  return {
    reader: connect(target, { enableOfflineQueue: false, maxRetriesPerRequest: 1 }),
    invalidations: connect(target, { autoResubscribe: false, maxRetriesPerRequest: null }),
  };
}

/** Connection options for BullMQ, which needs `maxRetriesPerRequest: null` on its blocking clients. */
export function bullConnectionOptions(target: RedisTarget): RedisOptions {
  const base: RedisOptions = { maxRetriesPerRequest: null, retryStrategy: (n) => Math.min(n * 100, 2000) };
  if ('socket' in target) return { ...base, path: target.socket };
  const u = new URL(target.url);
  return {
    ...base,
    host: u.hostname,
    port: Number(u.port || 6379),
    username: u.username || undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    db: u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0,
    tls: u.protocol === 'rediss:' ? {} : undefined,
  };
}

function connect(target: RedisTarget, extra: RedisOptions): Redis {
  const retryStrategy = (n: number): number => Math.min(n * 100, 2000);
  if ('socket' in target) return new Redis({ path: target.socket, retryStrategy, ...extra });
  return new Redis(target.url, { retryStrategy, ...extra });
}
