import { loadConfig } from '@kiln/control-plane/config';
import { log, setLogLevel, setLogSink } from '@kiln/control-plane/log';
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
    rows.push(...(await requestLogCost(url, body, once, opts)));
    rows.push(...(await benchFunctions(kiln.url, lat.p50, { samples: opts.samples, coldSamples: Number(process.env.BENCH_COLD_SAMPLES ?? 10) })));
    return rows;
  } finally {
    await kiln.stop({ stopExecutors: true });
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/**
 * The cost of the `request` line at info (one per request; log.ts gathers lines into one stderr
 * write per event-loop turn): the same hot invocation with the line (level info) and without it
 * (warn), alternated in the same run so the machine's drift lands on both. The lines go to this
 * process's stderr: run the bench with stderr to a file for a real write.
 */
async function requestLogCost(url: string, body: unknown, once: () => Promise<void>, opts: { samples: number; durationMs: number; clients: number[] }): Promise<Row[]> {
  const p50 = { info: [] as number[], warn: [] as number[] };
  const rps = { info: [] as number[], warn: [] as number[] };
  const clients = opts.clients[0] ?? 32;
  try {
    for (let round = 0; round < 2; round++) {
      for (const level of round === 0 ? (['info', 'warn'] as const) : (['warn', 'info'] as const)) {
        setLogLevel(level);
        p50[level].push(percentiles(await sequential(opts.samples, once)).p50);
        rps[level].push(await remoteThroughput({ url, body, expect: { sum: 3 }, clients, warmupMs: 1000, durationMs: opts.durationMs }));
      }
    }
  } finally {
    setLogLevel('warn');
  }
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const perLine = await logLineCost();
  return [
    { name: 'request log: one line through log.ts (gathered per turn)', value: perLine.gathered, unit: 'µs', note: `${(perLine.gathered / perLine.direct).toFixed(2)}× one stderr write per line (${perLine.direct.toFixed(2)} µs), 10 lines a turn` },
    { name: 'request log at info: hot sequential p50 with the line', value: mean(p50.info), unit: 'ms', note: `${(mean(p50.info) / mean(p50.warn)).toFixed(3)}× without it (${mean(p50.warn).toFixed(2)} ms; rounds ${p50.info.map((v) => v.toFixed(2)).join('/')} vs ${p50.warn.map((v) => v.toFixed(2)).join('/')})` },
    { name: `request log at info: throughput with the line, ${clients} clients`, value: mean(rps.info), unit: 'req/s', note: `${(mean(rps.info) / mean(rps.warn)).toFixed(3)}× without it (${mean(rps.warn).toFixed(0)} req/s; rounds ${rps.info.map((v) => v.toFixed(0)).join('/')} vs ${rps.warn.map((v) => v.toFixed(0)).join('/')})` },
  ];
}

/** µs per `request`-like line: log.ts's default sink (one write per turn) beside a write per line, 10 lines per event-loop turn, alternated twice. */
async function logLineCost(): Promise<{ gathered: number; direct: number }> {
  const TURNS = 2000;
  const PER_TURN = 10;
  const fields = { method: 'POST', path: '/api/v1/executions', status: 200, ms: 1.2 };
  const run = async (): Promise<number> => {
    const t0 = performance.now();
    for (let t = 0; t < TURNS; t++) {
      for (let i = 0; i < PER_TURN; i++) log('info', 'request', fields);
      await new Promise((r) => setImmediate(r));
    }
    await new Promise((r) => setImmediate(r));
    return ((performance.now() - t0) * 1000) / (TURNS * PER_TURN);
  };
  const out = { gathered: [] as number[], direct: [] as number[] };
  setLogLevel('info');
  try {
    for (let round = 0; round < 2; round++) {
      for (const how of round === 0 ? (['gathered', 'direct'] as const) : (['direct', 'gathered'] as const)) {
        const previous = how === 'direct' ? setLogSink((line) => process.stderr.write(line)) : undefined;
        try {
          out[how].push(await run());
        } finally {
          if (previous) setLogSink(previous);
        }
      }
    }
  } finally {
    setLogLevel('warn');
  }
  return { gathered: (out.gathered[0]! + out.gathered[1]!) / 2, direct: (out.direct[0]! + out.direct[1]!) / 2 };
}
