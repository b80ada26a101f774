import { loadConfig } from '@kiln/control-plane/config';
import { startKiln } from '@kiln/control-plane/server';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { Sandbox } from '@e2b/code-interpreter';
import { postJson } from './http.js';
import { percentiles, sequential, type Row } from './stats.js';

const TEMPLATE = fileURLToPath(new URL('../../../templates/code-interpreter.json', import.meta.url));
const LANGUAGES = ['python', 'javascript'] as const;
const agent = new Agent({ keepAlive: true, maxSockets: 16 });

/** Only the code-interpreter template, with a warm pool deep enough for back-to-back creates. */
function templatesDir(dataDir: string, minIdle: number): string {
  const dir = join(dataDir, 'templates');
  mkdirSync(dir, { recursive: true });
  const t = JSON.parse(readFileSync(TEMPLATE, 'utf8')) as { pool: Record<string, number> };
  t.pool.minIdle = minIdle;
  writeFileSync(join(dir, 'code-interpreter.json'), JSON.stringify(t));
  return dir;
}

/** Runs a cell and reads its whole NDJSON stream; throws unless it ended with the value `expected`. */
function runCell(url: string, body: Record<string, unknown>, expected: string): Promise<void> {
  const data = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': data.length } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const events = text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; isMainResult?: boolean; data?: Record<string, string> });
        const value = events.find((e) => e.type === 'result' && e.isMainResult)?.data?.['text/plain'];
        if (res.statusCode !== 200 || value !== expected || events.at(-1)?.type !== 'end') reject(new Error(`cell failed: ${res.statusCode} ${text.slice(0, 500)}`));
        else resolve();
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(data);
  });
}

async function del(url: string): Promise<void> {
  const res = await fetch(url, { method: 'DELETE' });
  if (res.status !== 204) throw new Error(`DELETE ${url}: ${res.status}`);
}

/**
 * Code contexts: the first cell of a new session (the kernel starts then: a Jupyter kernel, or
 * Kiln's JavaScript one) and a hot `1+1` in a live context, per language, through REST.
 */
export async function benchCode(socket: string, opts: { samples: number }): Promise<Row[]> {
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-bench-code-'));
  chmodSync(dataDir, 0o755);
  const prefix = `benchcode${process.pid}`;
  const kiln = await startKiln(
    loadConfig({ KILN_REDIS_URL: `unix://${socket}`, KILN_REDIS_PREFIX: prefix, KILN_PORT: '0', KILN_HOST: '127.0.0.1', KILN_DATA_DIR: dataDir, KILN_TEMPLATES_DIR: templatesDir(dataDir, 2), KILN_LOG_LEVEL: 'warn' }),
  );
  const base = `${kiln.url}/api/v1/sessions`;
  const rows: Row[] = [];
  const redis = new Redis({ path: socket });
  const warm = `${prefix}:warm:code-interpreter:python`;
  try {
    for (const language of LANGUAGES) {
      // A kernel start is seconds for Python: a few samples say enough.
      const firstSamples = Math.max(3, Math.min(Number(process.env.BENCH_CODE_FIRST_SAMPLES ?? 10), opts.samples));
      const first: number[] = [];
      for (let i = 0; i < firstSamples; i++) {
        // A warm sandbox, and time for the kernel the template starts with it (interpreter.prestart).
        for (let w = 0; w < 500 && (await redis.llen(warm)) < 1; w++) await new Promise((r) => setTimeout(r, 20));
        await new Promise((r) => setTimeout(r, 3000));
        const t0 = performance.now();
        const s = await postJson(base, { template: 'code-interpreter' });
        if (s.status !== 201) throw new Error(`create failed: ${JSON.stringify(s.body)}`);
        await runCell(`${base}/${s.body.id as string}/code`, { language, code: '1+1' }, '2');
        first.push(performance.now() - t0);
        await del(`${base}/${s.body.id as string}`);
      }
      const s = await postJson(base, { template: 'code-interpreter' });
      const id = s.body.id as string;
      const hot = () => runCell(`${base}/${id}/code`, { language, code: '1+1' }, '2');
      await sequential(20, hot);
      const hotLat = percentiles(await sequential(Math.min(opts.samples, 300), hot));
      await del(`${base}/${id}`);
      const firstLat = percentiles(first);
      rows.push(
        { name: `code: ${language} first cell after session create, p50`, value: firstLat.p50, unit: 'ms', note: `create from a warm pool + 1+1 (${language === 'python' ? 'kernel started with the sandbox' : 'kernel started by the run'}); ${firstSamples} samples` },
        { name: `code: ${language} first cell after session create, p99`, value: firstLat.p99, unit: 'ms' },
        { name: `code: ${language} hot \`1+1\`, p50`, value: hotLat.p50, unit: 'ms', note: 'NDJSON read to its end' },
        { name: `code: ${language} hot \`1+1\`, p99`, value: hotLat.p99, unit: 'ms' },
      );
    }
    // The same hot cell through @e2b/code-interpreter (port 49999's /execute over the same code
    // contexts), beside REST's Python figure of this run.
    Object.assign(process.env, { E2B_API_URL: `${kiln.url}/e2b`, E2B_SANDBOX_URL: `${kiln.url}/e2b/sandbox`, E2B_API_KEY: `e2b_${'0'.repeat(40)}` });
    const sbx = await Sandbox.create({ template: 'code-interpreter' });
    try {
      const e2bHot = async () => {
        const r = await sbx.runCode('1+1');
        if (r.text !== '2') throw new Error(`e2b cell failed: ${JSON.stringify(r.toJSON()).slice(0, 500)}`);
      };
      await sequential(20, e2bHot);
      const e2bLat = percentiles(await sequential(Math.min(opts.samples, 300), e2bHot));
      const restP50 = rows.find((r) => r.name === 'code: python hot `1+1`, p50')?.value ?? NaN;
      rows.push(
        { name: 'code: python hot `1+1` via @e2b/code-interpreter, p50', value: e2bLat.p50, unit: 'ms', note: `runCode through /e2b/sandbox/execute; ${(e2bLat.p50 / restP50).toFixed(2)}x REST's p50 in this run` },
        { name: 'code: python hot `1+1` via @e2b/code-interpreter, p99', value: e2bLat.p99, unit: 'ms' },
      );
    } finally {
      await Sandbox.kill(sbx.sandboxId).catch(() => undefined);
    }
    return rows;
  } finally {
    redis.disconnect();
    await kiln.stop({ stopExecutors: true });
    rmSync(dataDir, { recursive: true, force: true });
  }
}
