import { Redis } from 'ioredis';
import { inject } from 'vitest';
import { afterEach, describe, expect, it } from 'vitest';
import type { ExecutionRecord } from '../invocation/contract.js';
import type { ResponseChunk } from '../invocation/stream.js';
import { testRedis } from '../scheduler/test-redis.js';
import { ReplyRouter } from './replies.js';

/**
 * The way a streamed response takes between replicas: the worker's replica publishes chunks and
 * then the record on the caller's replica's channel, and the caller gets them in that order.
 */
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function router(prefix: string, publisher: Redis): Promise<ReplyRouter> {
  const subscriber = new Redis({ path: inject('redisSocket') });
  const r = new ReplyRouter(`replica-${Math.random().toString(36).slice(2)}`, prefix, publisher, subscriber);
  await r.start();
  cleanups.push(() => r.close());
  return r;
}

describe('ReplyRouter streaming', () => {
  it('hands another replica\'s caller its chunks in order, then the record; other jobs\' chunks are not its', async () => {
    const t = testRedis();
    cleanups.push(() => t.cleanup());
    const { redis, keys } = t;
    const caller = await router(keys.prefix, redis);
    const worker = await router(keys.prefix, redis);
    const seen: string[] = [];
    const waiting = caller.wait('job-1', (c: ResponseChunk) => seen.push(`${c.version}:${c.contentType ?? ''}:${c.data.toString('utf8')}`));
    worker.deliverChunk({ id: 'job-1', version: '3', data: Buffer.from('first'), contentType: 'text/plain' }, caller.replicaId);
    worker.deliverChunk({ id: 'job-2', version: '3', data: Buffer.from('not mine') }, caller.replicaId);
    worker.deliverChunk({ id: 'job-1', version: '3', data: Buffer.from([0xff, 0x00, 0x41]) }, caller.replicaId);
    worker.deliver({ id: 'job-1', status: 'succeeded' } as ExecutionRecord, caller.replicaId);
    const record = await waiting.record;
    waiting.cancel();
    expect(record.status).toBe('succeeded');
    expect(seen).toEqual(['3:text/plain:first', `3::${Buffer.from([0xff, 0x00, 0x41]).toString('utf8')}`]);
  });

  it('delivers in memory when the caller waits on the same replica', async () => {
    const t = testRedis();
    cleanups.push(() => t.cleanup());
    const { redis, keys } = t;
    const only = await router(keys.prefix, redis);
    const seen: Buffer[] = [];
    const waiting = only.wait('job-3', (c) => seen.push(c.data));
    only.deliverChunk({ id: 'job-3', version: '$LATEST', data: Buffer.from('a') }, only.replicaId);
    only.deliver({ id: 'job-3', status: 'failed' } as ExecutionRecord, only.replicaId);
    expect((await waiting.record).status).toBe('failed');
    expect(Buffer.concat(seen).toString()).toBe('a');
  });
});
