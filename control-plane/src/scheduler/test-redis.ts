import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { inject } from 'vitest';
import type { ExecutorHandle } from '../platforms/platform.js';
import { Keys } from '../store/keys.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Unix socket of the real redis-server the test run shares (tests/src/support/global-setup.ts). */
    redisSocket: string;
  }
}

/**
 * A connection to the test run's real Redis and a key prefix of this test's own; `cleanup`
 * deletes every key under the prefix and disconnects. For the scheduler's unit tests only.
 */
export function testRedis(): { redis: Redis; keys: Keys; cleanup(): Promise<void> } {
  const keys = new Keys(`u${randomBytes(4).toString('hex')}`);
  const redis = new Redis({ path: inject('redisSocket') });
  return {
    redis,
    keys,
    async cleanup() {
      let cursor = '0';
      do {
        const [next, found] = await redis.scan(cursor, 'MATCH', `${keys.prefix}:*`, 'COUNT', 1000);
        cursor = next;
        if (found.length) await redis.del(...found);
      } while (cursor !== '0');
      redis.disconnect();
    },
  };
}

/** An executor handle that points nowhere: records only store and return it. */
export function fakeExecutor(id: string, template = 'nodejs'): ExecutorHandle {
  return { id, template, address: '127.0.0.1:1', token: '', host: 'local', labels: { deployment: 'test', template, executor: id } };
}
