/** Latency percentiles over a sample, in ms. */
export function percentiles(samples: number[]): { p50: number; p99: number; mean: number } {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
  return { p50: at(0.5), p99: at(0.99), mean: s.reduce((a, b) => a + b, 0) / Math.max(1, s.length) };
}

/** Runs `fn` `n` times one after another and returns each call's latency in ms. */
export async function sequential(n: number, fn: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn();
    out.push(performance.now() - t0);
  }
  return out;
}

/** Runs `fn` from `clients` concurrent loops for `durationMs` and returns calls per second. */
export async function throughput(clients: number, durationMs: number, fn: () => Promise<unknown>): Promise<number> {
  let done = 0;
  const end = performance.now() + durationMs;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < end) {
        await fn();
        done++;
      }
    }),
  );
  return done / ((performance.now() - t0) / 1000);
}

export interface Row {
  name: string;
  value: number;
  unit: string;
  note?: string;
}

export function printRows(title: string, rows: Row[]): void {
  process.stdout.write(`\n${title}\n`);
  for (const r of rows) process.stdout.write(`  ${r.name.padEnd(58)} ${r.value.toFixed(r.value < 10 ? 3 : 1).padStart(10)} ${r.unit.padEnd(8)} ${r.note ?? ''}\n`);
}
