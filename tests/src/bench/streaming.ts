import { CreateFunctionUrlConfigCommand, InvokeWithResponseStreamCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { loadConfig } from '@kiln/control-plane/config';
import { startKiln } from '@kiln/control-plane/server';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { postJson } from './http.js';
import { percentiles, type Row } from './stats.js';

/** Writes its first chunk at once, then the rest after HOLD_MS: time to first byte should not include the hold. */
const HOLD_MS = 200;
const HANDLER = `exports.handler = awslambda.streamifyResponse(async (event, stream) => {
  stream.write('first chunk\\n');
  await new Promise((r) => setTimeout(r, ${HOLD_MS}));
  stream.end('last chunk\\n');
});`;

/**
 * Issue 19's streaming figure: time to the first byte of a streamed response, and to its end,
 * through InvokeWithResponseStream (the AWS SDK) and a RESPONSE_STREAM function URL, for a hot
 * handler that holds HOLD_MS between its two writes.
 */
export async function benchStreaming(socket: string, opts: { samples: number }): Promise<Row[]> {
  const samples = Math.max(20, Math.min(opts.samples, 200));
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-bench-stream-'));
  chmodSync(dataDir, 0o755);
  const kiln = await startKiln(
    loadConfig({ KILN_REDIS_URL: `unix://${socket}`, KILN_REDIS_PREFIX: `stream${process.pid}`, KILN_PORT: '0', KILN_HOST: '127.0.0.1', KILN_DATA_DIR: dataDir, KILN_LOG_LEVEL: 'warn' }),
  );
  const name = `bench-stream-${process.pid}`;
  const client = new LambdaClient({ endpoint: kiln.url, region: 'us-east-1', credentials: { accessKeyId: 'kiln', secretAccessKey: 'kiln' }, maxAttempts: 1 });
  try {
    const created = await postJson(`${kiln.url}/api/v1/functions`, { name, runtime: 'nodejs20.x', timeout: 10, code: { source: HANDLER } });
    if (created.status !== 201) throw new Error(`create failed: ${JSON.stringify(created.body)}`);
    const url = (await client.send(new CreateFunctionUrlConfigCommand({ FunctionName: name, AuthType: 'NONE', InvokeMode: 'RESPONSE_STREAM' }))).FunctionUrl ?? '';
    const viaSdk = async (): Promise<[number, number]> => {
      const t0 = performance.now();
      const out = await client.send(new InvokeWithResponseStreamCommand({ FunctionName: name, Payload: Buffer.from('{}') }));
      let first = 0;
      for await (const e of out.EventStream ?? []) if (e.PayloadChunk && !first) first = performance.now() - t0;
      return [first, performance.now() - t0];
    };
    const viaUrl = async (): Promise<[number, number]> => {
      const t0 = performance.now();
      const res = await fetch(url);
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      let first = 0;
      for (;;) {
        const { done } = await reader.read();
        if (done) break;
        if (!first) first = performance.now() - t0;
      }
      return [first, performance.now() - t0];
    };
    const measure = async (fn: () => Promise<[number, number]>): Promise<{ ttfb: number; total: number }> => {
      for (let i = 0; i < 5; i++) await fn();
      const ttfb: number[] = [];
      const total: number[] = [];
      for (let i = 0; i < samples; i++) {
        const [a, b] = await fn();
        ttfb.push(a);
        total.push(b);
      }
      return { ttfb: percentiles(ttfb).p50, total: percentiles(total).p50 };
    };
    const sdk = await measure(viaSdk);
    const http = await measure(viaUrl);
    return [
      { name: 'kiln: InvokeWithResponseStream time to first byte, p50', value: sdk.ttfb, unit: 'ms', note: `whole response ${sdk.total.toFixed(1)} ms (handler holds ${HOLD_MS} ms between chunks)` },
      { name: 'kiln: RESPONSE_STREAM function URL time to first byte, p50', value: http.ttfb, unit: 'ms', note: `whole response ${http.total.toFixed(1)} ms` },
    ];
  } finally {
    client.destroy();
    await kiln.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
