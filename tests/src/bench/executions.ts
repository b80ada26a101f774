import { loadConfig } from '@kiln/control-plane/config';
import { startKiln } from '@kiln/control-plane/server';
import { mkdtempSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { postJson } from './http.js';
import { benchFunctions } from './functions.js';
import { remoteThroughput } from './load-client.js';
import { percentiles, sequential, type Row } from './stats.js';

const TRIVIAL = 'exports.handler = async (e) => ({ sum: e.a + e.b })';

/** Trivial handler through the whole stack: HTTP → BullMQ → scheduler → gRPC → sandbox. */
export async function benchExecutions(
  socket: string,
  floor: { p50: number; rps: Map<number, number> },
  opts: { samples: number; durationMs: number; clients: number[] },
): Promise<Row[]> {
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-bench-'));
  chmodSync(dataDir, 0o755);
  const kiln = await startKiln(
    loadConfig({
      KILN_REDIS_URL: `unix://${socket}`,
      KILN_REDIS_PREFIX: `bench${process.pid}`,
      KILN_PORT: '0',
      KILN_HOST: '127.0.0.1',
      KILN_DATA_DIR: dataDir,
      KILN_LOG_LEVEL: 'warn',
    }),
  );
  try {
    const url = `${kiln.url}/api/v1/executions`;
    const once = async (): Promise<void> => {
      const res = await postJson(url, { code: TRIVIAL, language: 'nodejs', event: { a: 1, b: 2 } });
      if (res.body?.result?.sum !== 3) throw new Error(`unexpected answer ${JSON.stringify(res.body)}`);
    };
    await sequential(300, once);
    const lat = percentiles(await sequential(opts.samples, once));
    const rows: Row[] = [
      {
        name: 'kiln: trivial handler, REST sync, hot, sequential p50',
        value: lat.p50,
        unit: 'ms',
        note: `${(lat.p50 / floor.p50).toFixed(2)}× floor; target < 5 ms`,
      },
      { name: 'kiln: trivial handler, REST sync, hot, sequential p99', value: lat.p99, unit: 'ms' },
    ];
    // From its own process after a warm-up, like the start-type figures (pools.ts).
    const body = { code: TRIVIAL, language: 'nodejs', event: { a: 1, b: 2 } };
    for (const c of opts.clients) {
      const r = await remoteThroughput({ url, body, expect: { sum: 3 }, clients: c, warmupMs: 3000, durationMs: opts.durationMs });
      const f = floor.rps.get(c) ?? NaN;
      rows.push({
        name: `kiln: trivial handler throughput, ${c} clients`,
        value: r,
        unit: 'req/s',
        note: `${((r / f) * 100).toFixed(0)}% of floor; target > 500/s`,
      });
    }
    rows.push(...(await benchFunctions(kiln.url, lat.p50, { samples: opts.samples, coldSamples: Number(process.env.BENCH_COLD_SAMPLES ?? 10) })));
    return rows;
  } finally {
    await kiln.stop({ stopExecutors: true });
    rmSync(dataDir, { recursive: true, force: true });
  }
}
