import { CreateFunctionUrlConfigCommand, InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { loadConfig } from '@kiln/control-plane/config';
import { startKiln } from '@kiln/control-plane/server';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { postJson } from './http.js';
import { remoteThroughput } from './load-client.js';
import { percentiles, sequential, type Row } from './stats.js';

/**
 * One handler for both paths: a direct Invoke gets the event itself; a function URL gets the
 * payload format 2.0 event with the same JSON as its body, and answers `{ result }` so that the
 * load client's REST check (`body.result`) applies to it unchanged.
 */
const HANDLER = `exports.handler = async (e) => {
  if (e.version !== '2.0') return { sum: e.a + e.b };
  const p = JSON.parse(e.body);
  return { result: { sum: p.a + p.b } };
};`;
const EVENT = { a: 1, b: 2 };

const median = (xs: number[]): number => percentiles(xs).p50;

/**
 * Issue 19's figures: a function URL request (HTTP POST, keep-alive, payload format 2.0 mapping
 * both ways) beside a hot Invoke through the AWS SDK, on the same function, in alternating
 * rounds; then closed-loop throughput of each from a separate load process.
 */
export async function benchFunctionUrls(socket: string, opts: { samples: number; durationMs: number; clients: number[] }): Promise<Row[]> {
  const rounds = Number(process.env.BENCH_LAMBDA_ROUNDS ?? 8);
  const perRound = Math.max(20, Math.floor(opts.samples / rounds));
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-bench-urls-'));
  chmodSync(dataDir, 0o755);
  const kiln = await startKiln(
    loadConfig({ KILN_REDIS_URL: `unix://${socket}`, KILN_REDIS_PREFIX: `urls${process.pid}`, KILN_PORT: '0', KILN_HOST: '127.0.0.1', KILN_DATA_DIR: dataDir, KILN_LOG_LEVEL: 'warn' }),
  );
  const name = `bench-url-${process.pid}`;
  const client = new LambdaClient({ endpoint: kiln.url, region: 'us-east-1', credentials: { accessKeyId: 'kiln', secretAccessKey: 'kiln' }, maxAttempts: 1 });
  try {
    const created = await postJson(`${kiln.url}/api/v1/functions`, { name, runtime: 'nodejs20.x', code: { source: HANDLER } });
    if (created.status !== 201) throw new Error(`create failed: ${JSON.stringify(created.body)}`);
    const url = (await client.send(new CreateFunctionUrlConfigCommand({ FunctionName: name, AuthType: 'NONE' }))).FunctionUrl ?? '';
    const viaSdk = async (): Promise<void> => {
      const out = await client.send(new InvokeCommand({ FunctionName: name, Payload: Buffer.from(JSON.stringify(EVENT)) }));
      const got = Buffer.from(out.Payload ?? []).toString('utf8');
      if (out.FunctionError || got !== '{"sum":3}') throw new Error(`unexpected answer ${got}`);
    };
    const viaUrl = async (): Promise<void> => {
      const res = await postJson(url, EVENT);
      if (res.status !== 200 || res.body?.result?.sum !== 3) throw new Error(`unexpected answer ${res.status} ${JSON.stringify(res.body)}`);
    };
    await sequential(200, viaSdk);
    await sequential(200, viaUrl);
    const sdkP50: number[] = [];
    const urlP50: number[] = [];
    for (let r = 0; r < rounds; r++) {
      sdkP50.push(percentiles(await sequential(perRound, viaSdk)).p50);
      urlP50.push(percentiles(await sequential(perRound, viaUrl)).p50);
    }
    const hot = median(sdkP50);
    const byUrl = median(urlP50);
    const rows: Row[] = [
      { name: 'kiln: AWS SDK invoke, hot p50', value: hot, unit: 'ms', note: `median of ${rounds} rounds of ${perRound}` },
      { name: 'kiln: function URL request (NONE, BUFFERED), p50', value: byUrl, unit: 'ms', note: `${(byUrl - hot).toFixed(2)} ms beside hot Invoke` },
    ];
    for (const c of opts.clients) {
      const sdk = await remoteThroughput({ url: '', body: EVENT, expect: { sum: 3 }, clients: c, warmupMs: 2000, durationMs: opts.durationMs, lambda: { endpoint: kiln.url, functionName: name } });
      const http = await remoteThroughput({ url, body: EVENT, expect: { sum: 3 }, clients: c, warmupMs: 2000, durationMs: opts.durationMs });
      rows.push({ name: `kiln: AWS SDK invoke throughput, ${c} clients`, value: sdk, unit: 'req/s' });
      rows.push({ name: `kiln: function URL throughput, ${c} clients`, value: http, unit: 'req/s', note: `${(http / sdk).toFixed(2)}× Invoke` });
    }
    return rows;
  } finally {
    client.destroy();
    await kiln.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
