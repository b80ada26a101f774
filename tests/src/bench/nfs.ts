import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { loadConfig } from '@kiln/control-plane/config';
import { startKiln } from '@kiln/control-plane/server';
import { postJson } from './http.js';
import type { Row } from './stats.js';
import { flushAndRemove, MB, templatesDir, timed, writeRandomFile } from './file-fixtures.js';

/**
 * Sequential write and read of one file (default 200 MB, NFS_BENCH_MB) through a real
 * session's NFS export with libnfs's nfs-cp, on the executor's own port (direct) and through
 * the control plane's single-port gateway, beside a local `cp` of the same file in the same
 * run. The source is in the page cache for all of them, so the ratios compare copy paths.
 */
export async function benchNfs(socket: string, opts: { sizeMB?: number } = {}): Promise<Row[]> {
  const sizeMB = opts.sizeMB ?? Number(process.env.NFS_BENCH_MB ?? 200);
  const bytes = Math.round(sizeMB * MB);
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-bench-nfs-'));
  chmodSync(dataDir, 0o755);
  const prefix = `benchnfs${process.pid}`;
  const kiln = await startKiln(
    loadConfig({ KILN_REDIS_URL: `unix://${socket}`, KILN_REDIS_PREFIX: prefix, KILN_PORT: '0', KILN_HOST: '127.0.0.1', KILN_DATA_DIR: dataDir, KILN_TEMPLATES_DIR: templatesDir(dataDir), KILN_LOG_LEVEL: 'warn', KILN_NFS_PORT: '0' }),
  );
  const work = join(dataDir, 'bench');
  mkdirSync(work);
  try {
    const created = await postJson(`${kiln.url}/api/v1/sessions`, { template: 'nodejs' });
    if (created.status !== 201 || !created.body.nfs) throw new Error(`session create failed or has no NFS export: ${JSON.stringify(created.body)}`);
    const { id, nfs } = created.body as { id: string; nfs: { port: number; exportPath: string } };
    // The session record shows the gateway; the executor's own port is in the stored record.
    const redis = new Redis({ path: socket });
    const stored = JSON.parse((await redis.get(`${prefix}:ses:${id}`)) ?? '{}') as { nfs?: { upstream?: { port: number } } };
    redis.disconnect();
    const direct = stored.nfs?.upstream?.port;
    if (!direct) throw new Error('the session record has no executor NFS port');
    const url = (path: string, port = direct): string => `nfs://127.0.0.1${nfs.exportPath}${path}?nfsport=${port}&mountport=${port}&version=3`;
    const src = join(work, 'src.bin');
    writeRandomFile(src, bytes);

    const cpSecs = await timed('cp', [src, join(work, 'cp.bin')]);
    flushAndRemove(join(work, 'cp.bin'));
    const writeSecs = await timed('nfs-cp', [src, url('/bench.bin')]);
    const readSecs = await timed('nfs-cp', [url('/bench.bin'), join(work, 'back.bin')]);
    if (statSync(join(work, 'back.bin')).size !== bytes) throw new Error('the file read back over NFS has the wrong size');
    flushAndRemove(join(work, 'back.bin'));
    const gwWriteSecs = await timed('nfs-cp', [src, url('/bench-gw.bin', nfs.port)]);
    const gwReadSecs = await timed('nfs-cp', [url('/bench-gw.bin', nfs.port), join(work, 'back-gw.bin')]);
    if (statSync(join(work, 'back-gw.bin')).size !== bytes) throw new Error('the file read back through the NFS gateway has the wrong size');
    await fetch(`${kiln.url}/api/v1/sessions/${id}`, { method: 'DELETE' });

    const cp = bytes / MB / cpSecs;
    const w = bytes / MB / writeSecs;
    const r = bytes / MB / readSecs;
    const gw = bytes / MB / gwWriteSecs;
    const gr = bytes / MB / gwReadSecs;
    const note = `${sizeMB} MB, nfs-cp over loopback`;
    return [
      { name: 'nfs: sequential write (nfs-cp local → session)', value: w, unit: 'MB/s', note: `${note}; ${(w / cp).toFixed(2)}× local cp; target >= 150 MB/s` },
      { name: 'nfs: sequential read (nfs-cp session → local)', value: r, unit: 'MB/s', note: `${note}; ${(r / cp).toFixed(2)}× local cp; target >= 150 MB/s` },
      { name: 'nfs: sequential write through the gateway (KILN_NFS_PORT)', value: gw, unit: 'MB/s', note: `${note}; ${(gw / w).toFixed(2)}× direct` },
      { name: 'nfs: sequential read through the gateway (KILN_NFS_PORT)', value: gr, unit: 'MB/s', note: `${note}; ${(gr / r).toFixed(2)}× direct` },
      { name: 'floor: local cp of the same file', value: cp, unit: 'MB/s', note: 'same run, same disk' },
    ];
  } finally {
    await kiln.stop({ stopExecutors: true });
    rmSync(dataDir, { recursive: true, force: true });
  }
}
