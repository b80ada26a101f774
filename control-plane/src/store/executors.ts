import type { Redis } from 'ioredis';
import type { ExecutorHandle } from '../runtimes/runtime.js';
import type { Keys } from './keys.js';

/**
 * Executor records in Redis: how to reach each agent, and per template a sorted set that
 * scores each executor by its sandbox count (the scheduler picks the least loaded).
 * Handles are cached in memory: they never change while an executor lives. The whole handle
 * is kept as JSON, optional fields included (e.g. `nfsPort`), so every replica and a restarted
 * control plane see the same way to reach the executor's agent and NFS server.
 */
export class ExecutorStore {
  private readonly cache = new Map<string, ExecutorHandle>();

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  async add(handle: ExecutorHandle, sandboxCount = 0): Promise<void> {
    await this.redis
      .multi()
      .set(this.keys.executor(handle.id), JSON.stringify(handle))
      .zadd(this.keys.executors(handle.template), 'NX', sandboxCount, handle.id)
      .exec();
    this.cache.set(handle.id, handle);
  }

  async get(id: string): Promise<ExecutorHandle | undefined> {
    const cached = this.cache.get(id);
    if (cached) return cached;
    const raw = await this.redis.get(this.keys.executor(id));
    if (!raw) return undefined;
    const handle = JSON.parse(raw) as ExecutorHandle;
    this.cache.set(id, handle);
    return handle;
  }

  async listIds(template: string): Promise<string[]> {
    return this.redis.zrange(this.keys.executors(template), 0, -1);
  }

  async load(template: string): Promise<Array<{ id: string; sandboxes: number }>> {
    const flat = await this.redis.zrange(this.keys.executors(template), 0, -1, 'WITHSCORES');
    const out: Array<{ id: string; sandboxes: number }> = [];
    for (let i = 0; i < flat.length; i += 2) out.push({ id: flat[i] as string, sandboxes: Number(flat[i + 1]) });
    return out;
  }

  async remove(handle: { id: string; template: string }): Promise<void> {
    await this.redis.multi().del(this.keys.executor(handle.id)).zrem(this.keys.executors(handle.template), handle.id).exec();
    this.cache.delete(handle.id);
  }
}
