import { spawn } from 'node:child_process';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { fileURLToPath } from 'node:url';
import { applyCpuPolicy } from '@kiln/control-plane/cpu-policy';
import { postJson } from './http.js';
import { throughput } from './stats.js';

/** Written by the client when the warm-up ends and the measured window starts. */
const MEASURING = 'measuring\n';

interface LoadSpec {
  url: string;
  /** Load through the AWS SDK's Lambda client (Invoke on this function) instead of a REST POST of `body`. */
  lambda?: { endpoint: string; functionName: string };
  body: unknown;
  /** Every answer's `result` (the whole payload through the Lambda client) must equal this (a wrong answer fails the run). */
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

/** Means of the answers' timing breakdown and counts of their start types (LOAD_TIMINGS=1). */
class TimingSums {
  private readonly ms = new Map<string, number>();
  private readonly starts = new Map<string, number>();
  private n = 0;

  add(clientMs: number, body: { timings?: Record<string, number>; startType?: string }): void {
    this.n++;
    for (const [k, v] of [['client', clientMs] as const, ...Object.entries(body.timings ?? {})]) this.ms.set(k, (this.ms.get(k) ?? 0) + v);
    const start = body.startType ?? 'none';
    this.starts.set(start, (this.starts.get(start) ?? 0) + 1);
  }

  clear(): void {
    this.ms.clear();
    this.starts.clear();
    this.n = 0;
  }

  summary(): string {
    const means = [...this.ms].map(([k, v]) => `${k} ${(v / this.n).toFixed(2)}`);
    const starts = [...this.starts].map(([k, v]) => `${k} ${v}`);
    return `mean ms: ${means.join(', ')}; start types: ${starts.join(', ')}`;
  }
}

async function main(): Promise<void> {
  let input = '';
  for await (const chunk of process.stdin) input += String(chunk);
  const spec = JSON.parse(input) as LoadSpec;
  const want = JSON.stringify(spec.expect);
  const timings = process.env.LOAD_TIMINGS ? new TimingSums() : undefined;
  if (spec.lambda) {
    const client = new LambdaClient({ endpoint: spec.lambda.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'kiln', secretAccessKey: 'kiln' }, maxAttempts: 1 });
    const cmd = { FunctionName: spec.lambda.functionName, Payload: Buffer.from(JSON.stringify(spec.body)) };
    const viaSdk = async (): Promise<void> => {
      const out = await client.send(new InvokeCommand(cmd));
      const got = Buffer.from(out.Payload ?? []).toString('utf8');
      if (out.FunctionError || got !== want) throw new Error(`unexpected answer ${got}`);
    };
    await throughput(spec.clients, spec.warmupMs, viaSdk);
    process.stdout.write(MEASURING);
    process.stdout.write(`${await throughput(spec.clients, spec.durationMs, viaSdk)}\n`);
    client.destroy();
    return;
  }
  const once = async (): Promise<void> => {
    const t0 = performance.now();
    const res = await postJson(spec.url, spec.body);
    if (JSON.stringify(res.body?.result) !== want) throw new Error(`unexpected answer ${JSON.stringify(res.body)}`);
    timings?.add(performance.now() - t0, res.body);
  };
  await throughput(spec.clients, spec.warmupMs, once);
  timings?.clear();
  process.stdout.write(MEASURING);
  const rps = await throughput(spec.clients, spec.durationMs, once);
  if (timings) process.stderr.write(`${timings.summary()}\n`);
  process.stdout.write(`${rps}\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  // A client is not part of Kiln: it runs as an ordinary process, not in the SCHED_BATCH class
  // it inherits from the bench process that hosts the control plane.
  applyCpuPolicy('normal');
  main().catch((err: unknown) => {
    process.stderr.write(`load client failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
