import { Queue, QueueEvents, Worker } from 'bullmq';
import { percentiles, sequential, throughput, type Row } from './stats.js';

/**
 * The floor every Kiln figure is compared with: a bare BullMQ add → process → wait round trip
 * on the same Redis, with a processor that does nothing.
 */
export async function benchFloor(
  socket: string,
  opts: { samples: number; durationMs: number; clients: number[] },
): Promise<{ rows: Row[]; p50: number; rps: Map<number, number> }> {
  const connection = { path: socket, maxRetriesPerRequest: null };
  const name = `floor-${process.pid}`;
  const queue = new Queue(name, { connection, prefix: 'bench' });
  // Every waitUntilFinished listens for the queue closing: one listener per client in flight.
  queue.setMaxListeners(1024);
  const events = new QueueEvents(name, { connection, prefix: 'bench' });
  const worker = new Worker(name, () => Promise.resolve({ ok: 1 }), { connection, prefix: 'bench', concurrency: 256 });
  await Promise.all([events.waitUntilReady(), worker.waitUntilReady()]);
  const once = async (): Promise<void> => {
    const job = await queue.add('j', { a: 1, b: 2 }, { removeOnComplete: { age: 60 }, removeOnFail: { age: 60 } });
    await job.waitUntilFinished(events, 30_000);
  };
  await sequential(200, once);
  const lat = percentiles(await sequential(opts.samples, once));
  const rows: Row[] = [
    { name: 'floor: bare BullMQ round trip, sequential p50', value: lat.p50, unit: 'ms' },
    { name: 'floor: bare BullMQ round trip, sequential p99', value: lat.p99, unit: 'ms' },
  ];
  const rps = new Map<number, number>();
  for (const c of opts.clients) {
    await throughput(c, 1000, once);
    const r = await throughput(c, opts.durationMs, once);
    rps.set(c, r);
    rows.push({ name: `floor: bare BullMQ throughput, ${c} clients`, value: r, unit: 'req/s' });
  }
  await worker.close();
  await events.close();
  await queue.obliterate({ force: true });
  await queue.close();
  return { rows, p50: lat.p50, rps };
}
