import type { Redis } from 'ioredis';
import type { ExecutionRecord } from '../invocation/contract.js';
import type { ChunkListener, ResponseChunk } from '../invocation/stream.js';
import { log } from '../log.js';

type Waiter = (record: ExecutionRecord) => void;

/** A streamed response's chunk as published on a reply channel (a record has no `chunk`). */
interface ChunkMessage {
  id: string;
  version: string;
  chunk: string;
  contentType?: string;
}

/**
 * Delivers finished records to the caller waiting for them. When the job ran on this replica
 * the record is handed over in memory; when another replica ran it, it publishes the record
 * on the waiting replica's channel. This replaces BullMQ's QueueEvents on the hot path: every
 * replica reading every job's event stream costs far more than one targeted message.
 * A streaming job's chunks take the same way ahead of its record: one publisher connection and
 * one channel, so Redis delivers them in the order they were sent, and the record last.
 */
export class ReplyRouter {
  private readonly waiters = new Map<string, Waiter>();
  private readonly chunkListeners = new Map<string, ChunkListener>();

  constructor(
    readonly replicaId: string,
    private readonly channelPrefix: string,
    private readonly publisher: Redis,
    private readonly subscriber: Redis,
  ) {}

  private channel(replica: string): string {
    return `${this.channelPrefix}:reply:${replica}`;
  }

  async start(): Promise<void> {
    this.subscriber.on('message', (_channel: string, message: string) => {
      let record: ExecutionRecord | ChunkMessage;
      try {
        record = JSON.parse(message) as ExecutionRecord | ChunkMessage;
      } catch {
        return;
      }
      if ('chunk' in record) {
        const { chunk, ...rest } = record;
        this.chunkListeners.get(record.id)?.({ ...rest, data: Buffer.from(chunk, 'base64') });
        return;
      }
      this.waiters.get(record.id)?.(record);
    });
    await this.subscriber.subscribe(this.channel(this.replicaId));
  }

  /** Registers interest in a job's record (and its chunks, for a streaming job); call the returned function to stop waiting. */
  wait(id: string, onChunk?: ChunkListener): { record: Promise<ExecutionRecord>; cancel: () => void } {
    let resolve!: Waiter;
    const record = new Promise<ExecutionRecord>((r) => (resolve = r));
    this.waiters.set(id, resolve);
    if (onChunk) this.chunkListeners.set(id, onChunk);
    return {
      record,
      cancel: () => {
        this.waiters.delete(id);
        this.chunkListeners.delete(id);
      },
    };
  }

  /** Hands a streaming job's chunk to its caller, here or on another replica (dropped if nobody listens: the caller is gone). */
  deliverChunk(chunk: ResponseChunk, replyTo: string | undefined): void {
    const local = this.chunkListeners.get(chunk.id);
    if (local) {
      local(chunk);
      return;
    }
    if (!replyTo || replyTo === this.replicaId) return;
    const message: ChunkMessage = { id: chunk.id, version: chunk.version, chunk: chunk.data.toString('base64'), ...(chunk.contentType ? { contentType: chunk.contentType } : {}) };
    this.publisher.publish(this.channel(replyTo), JSON.stringify(message)).catch((err: unknown) => log('warn', 'could not publish a response chunk', { id: chunk.id, error: String(err) }));
  }

  /**
   * Whether the caller of a synchronous job still waits for it: in this replica's memory when it
   * is the caller's, else whether the caller's replica still listens on its reply channel (one
   * PUBSUB NUMSUB, only for jobs another replica submitted). A replica that died or restarted
   * listens no more: its callers already saw their connections drop.
   */
  async callerWaiting(id: string, replyTo: string | undefined): Promise<boolean> {
    if (replyTo === undefined) return true;
    if (replyTo === this.replicaId) return this.waiters.has(id);
    const [, listeners] = (await this.publisher.pubsub('NUMSUB', this.channel(replyTo))) as [string, number];
    return Number(listeners) > 0;
  }

  /** Hands a finished record to whoever waits for it, here or on another replica. */
  deliver(record: ExecutionRecord, replyTo: string | undefined): void {
    const local = this.waiters.get(record.id);
    if (local) {
      local(record);
      return;
    }
    if (!replyTo || replyTo === this.replicaId) return;
    // Lost only if that replica is gone, and then nobody is waiting; the record stays in BullMQ.
    this.publisher.publish(this.channel(replyTo), JSON.stringify(record)).catch((err: unknown) => log('warn', 'could not publish a reply', { id: record.id, error: String(err) }));
  }

  async close(): Promise<void> {
    this.waiters.clear();
    this.chunkListeners.clear();
    await this.subscriber.quit().catch(() => undefined);
  }
}
