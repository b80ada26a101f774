import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { postJson } from './http.js';
import { throughput } from './stats.js';

/** Written by the client when the warm-up ends and the measured window starts. */
const MEASURING = 'measuring\n';

interface LoadSpec {
  url: string;
  body: unknown;
  /** Every answer's `result` must equal this (a wrong answer fails the run). */
  expect: unknown;
  clients: number;
  warmupMs: number;
  durationMs: number;
}

/**
 * Closed-loop HTTP throughput measured from a separate process, the way wrk or autocannon
 * load a server: the load generator's own JSON and socket work does not run on the event loop
 * of the control plane it measures. It still shares the machine's cores, as any client would.
 * The warm-up lets V8 optimise every process on the path first (steady state, not JIT time).
 */
export function remoteThroughput(spec: LoadSpec, onMeasuring?: () => void): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url)], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.startsWith(MEASURING)) {
        out = out.slice(MEASURING.length);
        onMeasuring?.();
      }
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      const rps = Number(out.trim());
      if (code === 0 && Number.isFinite(rps)) resolve(rps);
      else reject(new Error(`load client exited with ${code}: ${out}`));
    });
    child.stdin.end(JSON.stringify(spec));
  });
}

async function main(): Promise<void> {
  let input = '';
  for await (const chunk of process.stdin) input += String(chunk);
  const spec = JSON.parse(input) as LoadSpec;
  const want = JSON.stringify(spec.expect);
  const once = async (): Promise<void> => {
    const res = await postJson(spec.url, spec.body);
    if (JSON.stringify(res.body?.result) !== want) throw new Error(`unexpected answer ${JSON.stringify(res.body)}`);
  };
  await throughput(spec.clients, spec.warmupMs, once);
  process.stdout.write(MEASURING);
  process.stdout.write(`${await throughput(spec.clients, spec.durationMs, once)}\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`load client failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
