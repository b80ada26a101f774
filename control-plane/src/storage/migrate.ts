import type { Redis } from 'ioredis';
import { log } from '../log.js';
import type { Keys } from '../store/keys.js';
import { checkBlobKey, type BlobStore } from './blobs.js';

/**
 * Moves the blobs a deployment kept in Redis (every one before the disk and S3 stores, and
 * KILN_BLOB_STORE=redis) to the configured store, once, at start: each is written there, then
 * deleted from Redis, so a start interrupted half-way moves the rest next time and nothing is
 * lost. Function records keep their blob keys, which mean the same in every store. Replicas
 * starting together may both copy a blob; the copies are the same bytes. Resolves with how many
 * blobs this replica moved.
 */
export async function migrateBlobsOutOfRedis(redis: Redis, keys: Keys, target: BlobStore): Promise<number> {
  if (target.description === 'redis') {
    // Blobs go to Redis again: a later start on another store must look for them.
    await redis.del(keys.blobsMigrated());
    return 0;
  }
  if ((await redis.exists(keys.blobsMigrated())) === 1) return 0;
  const prefix = keys.blob('');
  let moved = 0;
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    cursor = next;
    for (const redisKey of found) {
      const key = redisKey.slice(prefix.length);
      // The Redis store's folder indexes go with the blobs; anything else Kiln did not write is left alone.
      if (key.endsWith('/.index')) {
        await redis.del(redisKey);
        continue;
      }
      try {
        checkBlobKey(key);
      } catch {
        log('warn', 'left a Redis blob with a key no store takes', { key: key.slice(0, 100) });
        continue;
      }
      const data = await redis.getBuffer(redisKey);
      if (data === null) continue;
      await target.put(key, data);
      await redis.del(redisKey);
      moved++;
    }
  } while (cursor !== '0');
  await redis.set(keys.blobsMigrated(), target.description);
  if (moved) log('info', 'moved blobs out of Redis', { count: moved, to: target.description });
  return moved;
}
