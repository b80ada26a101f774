import { loadConfig } from '@kiln/control-plane/config';
import { startKiln } from '@kiln/control-plane/server';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Row } from './stats.js';

const SDK = fileURLToPath(new URL('../../../sdk/python', import.meta.url));
const NODEJS_TEMPLATE = fileURLToPath(new URL('../../../templates/nodejs.json', import.meta.url));

function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err}${out}`))));
  });
}

/**
 * The Python SDK (sdk/python/bench/bench.py, system python3) beside bare http.client making the
 * same requests in the same run: process/run of `true` (sync and asyncio clients) and a file
 * upload (streamed from disk by the SDK, one in-memory body for the floor).
 */
export async function benchSdkPython(socket: string): Promise<Row[]> {
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-bench-sdkpy-'));
  chmodSync(dataDir, 0o755);
  const templates = join(dataDir, 'templates');
  mkdirSync(templates);
  writeFileSync(join(templates, 'nodejs.json'), readFileSync(NODEJS_TEMPLATE));
  const kiln = await startKiln(
    loadConfig({ KILN_REDIS_URL: `unix://${socket}`, KILN_REDIS_PREFIX: `benchsdkpy${process.pid}`, KILN_PORT: '0', KILN_HOST: '127.0.0.1', KILN_DATA_DIR: dataDir, KILN_TEMPLATES_DIR: templates, KILN_LOG_LEVEL: 'warn', KILN_MAX_BODY_BYTES: String(256 * 1024 * 1024) }),
  );
  const venv = join(dataDir, 'venv');
  try {
    await run('/usr/bin/python3', ['-m', 'venv', venv]);
    await run(join(venv, 'bin/python'), ['-m', 'pip', 'install', '--no-index', '--no-cache-dir', '--disable-pip-version-check', SDK]);
    const res = await fetch(`${kiln.url}/api/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"template":"nodejs"}' });
    const session = (await res.json()) as { id: string };
    try {
      const f = JSON.parse(await run(join(venv, 'bin/python'), [join(SDK, 'bench/bench.py')], { KILN_URL: kiln.url, KILN_SESSION: session.id })) as Record<string, number>;
      const r = (a: number, b: number): string => (a / b).toFixed(2);
      const mb = process.env.BENCH_SDK_UPLOAD_MB ?? '64';
      return [
        { name: 'http.client process/run (floor)', value: f.run_raw_ms as number, unit: 'ms p50' },
        { name: 'SDK commands.run', value: f.run_sdk_ms as number, unit: 'ms p50', note: `${r(f.run_sdk_ms as number, f.run_raw_ms as number)}x floor` },
        { name: 'AsyncKiln commands.run', value: f.run_async_sdk_ms as number, unit: 'ms p50', note: `${r(f.run_async_sdk_ms as number, f.run_raw_ms as number)}x floor` },
        { name: `http.client PUT ${mb} MB from memory (floor)`, value: f.upload_raw_mb_s as number, unit: 'MB/s' },
        { name: `SDK files.upload ${mb} MB streamed from disk`, value: f.upload_sdk_mb_s as number, unit: 'MB/s', note: `${r(f.upload_sdk_mb_s as number, f.upload_raw_mb_s as number)}x floor` },
        { name: `SDK files.download ${mb} MB to disk`, value: f.download_sdk_mb_s as number, unit: 'MB/s' },
      ];
    } finally {
      await fetch(`${kiln.url}/api/v1/sessions/${session.id}`, { method: 'DELETE' });
    }
  } finally {
    await kiln.stop({ stopExecutors: true });
    rmSync(dataDir, { recursive: true, force: true });
  }
}
