import { loadConfig } from '@kiln/control-plane/config';
import { startKiln } from '@kiln/control-plane/server';
import { Kiln } from '@kiln-sandbox/sdk';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { postJson } from './http.js';
import { percentiles, sequential, type Row } from './stats.js';

const REPO_TEMPLATES = fileURLToPath(new URL('../../../templates', import.meta.url));

/**
 * What the TypeScript SDK adds to a call: `session.commands.run` and a 1 MiB file round trip
 * through the SDK, each beside the same request sent with plain fetch in the same run.
 */
export async function benchSdk(socket: string, opts: { samples: number }): Promise<Row[]> {
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-bench-sdk-'));
  chmodSync(dataDir, 0o755);
  const templates = join(dataDir, 'templates');
  mkdirSync(templates);
  for (const file of readdirSync(REPO_TEMPLATES).filter((f) => f === 'nodejs.json')) {
    const t = JSON.parse(readFileSync(join(REPO_TEMPLATES, file), 'utf8')) as { pool: Record<string, number> };
    t.pool.minIdle = 1;
    writeFileSync(join(templates, file), JSON.stringify(t));
  }
  const kiln = await startKiln(
    loadConfig({ KILN_REDIS_URL: `unix://${socket}`, KILN_REDIS_PREFIX: `benchsdk${process.pid}`, KILN_PORT: '0', KILN_HOST: '127.0.0.1', KILN_DATA_DIR: dataDir, KILN_TEMPLATES_DIR: templates, KILN_LOG_LEVEL: 'warn' }),
  );
  try {
    const client = new Kiln({ url: kiln.url });
    const session = await client.sessions.create({ template: 'nodejs' });
    const base = `${kiln.url}/api/v1/sessions/${session.id}`;
    const viaSdk = async (): Promise<void> => {
      if ((await session.commands.run('true', { shell: false })).exitCode !== 0) throw new Error('sdk run failed');
    };
    const viaFetch = async (): Promise<void> => {
      const res = await postJson(`${base}/process/run`, { command: 'true', args: [] });
      if (res.body?.exitCode !== 0) throw new Error('run failed');
    };
    // Alternating blocks, so both see the same load.
    const sdkMs: number[] = [];
    const rawMs: number[] = [];
    await sequential(30, viaSdk);
    await sequential(30, viaFetch);
    for (let i = 0; i < 4; i++) {
      sdkMs.push(...(await sequential(Math.ceil(opts.samples / 4), viaSdk)));
      rawMs.push(...(await sequential(Math.ceil(opts.samples / 4), viaFetch)));
    }
    const data = new Uint8Array(1024 * 1024).fill(7);
    const fileSdk = async (): Promise<void> => {
      await session.files.write('f.bin', data);
      if ((await session.files.readBytes('f.bin')).length !== data.length) throw new Error('short read');
    };
    const fileRaw = async (): Promise<void> => {
      await (await fetch(`${base}/files?path=f.bin`, { method: 'PUT', body: data, headers: { 'content-type': 'application/octet-stream' } })).arrayBuffer();
      if ((await (await fetch(`${base}/files?path=f.bin`)).arrayBuffer()).byteLength !== data.length) throw new Error('short read');
    };
    const files = Math.min(opts.samples, 100);
    const fSdk = percentiles(await sequential(files, fileSdk)).p50;
    const fRaw = percentiles(await sequential(files, fileRaw)).p50;
    await session.kill();
    const run = percentiles(sdkMs).p50;
    const raw = percentiles(rawMs).p50;
    return [
      { name: 'sdk: session.commands.run `true`, p50', value: run, unit: 'ms', note: `${(run / raw).toFixed(2)}× plain fetch` },
      { name: 'baseline: POST process/run `true` with fetch, p50', value: raw, unit: 'ms' },
      { name: 'sdk: 1 MiB files.write + readBytes, p50', value: fSdk, unit: 'ms', note: `${(fSdk / fRaw).toFixed(2)}× plain fetch` },
      { name: 'baseline: 1 MiB PUT + GET with fetch, p50', value: fRaw, unit: 'ms' },
    ];
  } finally {
    await kiln.stop({ stopExecutors: true });
    rmSync(dataDir, { recursive: true, force: true });
  }
}
