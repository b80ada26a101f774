import { chmodSync, createReadStream, createWriteStream, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { loadConfig } from '@kiln/control-plane/config';
import { startKiln } from '@kiln/control-plane/server';
import { postJson } from './http.js';
import type { Row } from './stats.js';
import { flushAndRemove, MB, templatesDir, timed, writeRandomFile } from './file-fixtures.js';

/**
 * The plain HTTP baseline: a Node server in this process that streams a PUT body to a file and
 * a file to a GET, nothing else (no auth, no gRPC hop, no sandbox), driven by the same curl.
 * A PUT to /sink reads the body and drops it: loopback HTTP with no disk, the upload ceiling.
 */
async function plainServer(dir: string): Promise<{ url: string; sink: string; server: Server }> {
  const server = createServer((req, res) => {
    const file = join(dir, 'plain.bin');
    const done = (err?: unknown): void => {
      res.statusCode = err ? 500 : 200;
      res.end();
    };
    if (req.method === 'PUT' && req.url === '/sink') req.on('end', () => done()).on('error', done).resume();
    else if (req.method === 'PUT') pipeline(req, createWriteStream(file)).then(() => done(), done);
    else pipeline(createReadStream(file), res).catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  return { url: `${base}/plain.bin`, sink: `${base}/sink`, server };
}

/**
 * Upload and download of one file (default 100 MB, BENCH_FILES_MB) through a session's REST
 * files API with curl, beside the same curl against a plain local HTTP server and a local `cp`,
 * all in the same run. The source is in the page cache for all of them.
 */
export async function benchFiles(socket: string, opts: { sizeMB?: number } = {}): Promise<Row[]> {
  const sizeMB = opts.sizeMB ?? Number(process.env.BENCH_FILES_MB ?? 100);
  const bytes = Math.round(sizeMB * MB);
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-bench-files-'));
  chmodSync(dataDir, 0o755);
  const kiln = await startKiln(
    loadConfig({ KILN_REDIS_URL: `unix://${socket}`, KILN_REDIS_PREFIX: `benchfiles${process.pid}`, KILN_PORT: '0', KILN_HOST: '127.0.0.1', KILN_DATA_DIR: dataDir, KILN_TEMPLATES_DIR: templatesDir(dataDir), KILN_LOG_LEVEL: 'warn' }),
  );
  const work = join(dataDir, 'bench');
  mkdirSync(work);
  const plain = await plainServer(work);
  try {
    const created = await postJson(`${kiln.url}/api/v1/sessions`, { template: 'nodejs' });
    if (created.status !== 201) throw new Error(`session create failed: ${JSON.stringify(created.body)}`);
    const id = (created.body as { id: string }).id;
    const url = `${kiln.url}/api/v1/sessions/${id}/files?path=bench.bin`;
    const src = join(work, 'src.bin');
    writeRandomFile(src, bytes);

    // The host is shared and its load moves by the second: every figure is the median of
    // BENCH_FILES_ROUNDS rounds, each round timing all of them back to back.
    const rounds = Math.max(1, Number(process.env.BENCH_FILES_ROUNDS ?? 3));
    const times: Record<'cp' | 'curlCopy' | 'sinkUp' | 'plainUp' | 'plainDown' | 'up' | 'down', number[]> = { cp: [], curlCopy: [], sinkUp: [], plainUp: [], plainDown: [], up: [], down: [] };
    for (let round = 0; round < rounds; round++) {
      times.cp.push(await timed('cp', [src, join(work, 'cp.bin')]));
      flushAndRemove(join(work, 'cp.bin'));
      // cp copies inside the kernel (copy_file_range); curl moves every byte through user space,
      // even from a file:// URL: the most any row driven by curl can reach.
      times.curlCopy.push(await timed('curl', ['-sS', '-f', '-o', join(work, 'curl-copy.bin'), `file://${src}`]));
      flushAndRemove(join(work, 'curl-copy.bin'));
      times.sinkUp.push(await timed('curl', ['-sS', '-f', '-T', src, plain.sink]));
      times.plainUp.push(await timed('curl', ['-sS', '-f', '-T', src, plain.url]));
      times.plainDown.push(await timed('curl', ['-sS', '-f', '-o', join(work, 'plain-back.bin'), plain.url]));
      flushAndRemove(join(work, 'plain-back.bin'));
      flushAndRemove(join(work, 'plain.bin'));
      times.up.push(await timed('curl', ['-sS', '-f', '-T', src, '-H', 'content-type: application/octet-stream', url]));
      times.down.push(await timed('curl', ['-sS', '-f', '-o', join(work, 'back.bin'), url]));
      if (statSync(join(work, 'back.bin')).size !== bytes) throw new Error('the file downloaded through the files API has the wrong size');
      flushAndRemove(join(work, 'back.bin'));
      // The next round's upload then meets an empty workspace, as the first one did.
      await fetch(url, { method: 'DELETE' });
    }
    await fetch(`${kiln.url}/api/v1/sessions/${id}`, { method: 'DELETE' });
    const median = (xs: number[]): number => {
      const sorted = [...xs].sort((a, b) => a - b);
      return sorted[Math.floor(sorted.length / 2)] as number;
    };
    const [cpSecs, curlCopy, sinkUp, plainUp, plainDown, up, down] = [times.cp, times.curlCopy, times.sinkUp, times.plainUp, times.plainDown, times.up, times.down].map(median) as [number, number, number, number, number, number, number];

    const rate = (secs: number): number => bytes / MB / secs;
    const [cp, pu, pd, u, d, cc, su] = [rate(cpSecs), rate(plainUp), rate(plainDown), rate(up), rate(down), rate(curlCopy), rate(sinkUp)];
    const note = `${sizeMB} MB, curl over loopback, median of ${rounds}`;
    return [
      { name: 'files: upload (PUT .../files, curl -T)', value: u, unit: 'MB/s', note: `${note}; ${(u / pu).toFixed(2)}× plain HTTP, ${(u / cp).toFixed(2)}× local cp, ${(u / cc).toFixed(2)}× curl's own copy; target >= 0.5× cp` },
      { name: 'files: download (GET .../files, curl)', value: d, unit: 'MB/s', note: `${note}; ${(d / pd).toFixed(2)}× plain HTTP, ${(d / cp).toFixed(2)}× local cp, ${(d / cc).toFixed(2)}× curl's own copy; target >= 0.5× cp` },
      { name: "floor: curl's own copy of the file (file:// URL, no network)", value: cc, unit: 'MB/s', note: `same run; ${(cc / cp).toFixed(2)}× cp: the ceiling of any curl-driven row` },
      { name: 'floor: plain local HTTP upload to a server that drops it (no disk)', value: su, unit: 'MB/s', note: `same run, same curl; ${(su / cp).toFixed(2)}× cp` },
      { name: 'floor: plain local HTTP upload (Node server to a file)', value: pu, unit: 'MB/s', note: 'same run, same curl' },
      { name: 'floor: plain local HTTP download (a file from a Node server)', value: pd, unit: 'MB/s', note: 'same run, same curl' },
      { name: 'floor: local cp of the same file', value: cp, unit: 'MB/s', note: 'same run, same disk' },
    ];
  } finally {
    plain.server.close();
    await kiln.stop({ stopExecutors: true });
    rmSync(dataDir, { recursive: true, force: true });
  }
}
