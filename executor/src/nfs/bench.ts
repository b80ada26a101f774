/**
 * Throughput benchmark of the NFS export: a file copied in and out through
 * libnfs's nfs-cp, beside a plain local `cp` of the same file in the same
 * run. `npm run bench` imports {@link runNfsBench}; running this module
 * directly prints the figures.
 */
import { randomFillSync } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { makeExport, removeDir, run, startNfs, tempDir } from './test-support.js';

/** One reported figure. */
export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  note?: string;
}

/** MB here is 10^6 bytes, for both the file size and the rates. */
const MB = 1_000_000;

function writeRandomFile(path: string, bytes: number): void {
  const chunk = Buffer.allocUnsafe(1 << 20);
  const fd = openSync(path, 'w');
  try {
    for (let done = 0; done < bytes;) {
      const n = Math.min(chunk.length, bytes - done);
      randomFillSync(chunk, 0, n);
      writeSync(fd, chunk, 0, n);
      done += n;
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

async function timed(cmd: string, args: string[]): Promise<number> {
  const t0 = process.hrtime.bigint();
  const r = await run(cmd, args, 300_000);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return secs;
}

const round = (v: number): number => Math.round(v * 100) / 100;

/**
 * Creates a temporary export and server, then times (1) local cp, (2) nfs-cp
 * local → NFS (sequential write), (3) nfs-cp NFS → local (sequential read).
 * The source file is in the page cache for all three, so the comparison is
 * of the copy paths, not of the disk.
 */
export async function runNfsBench(opts?: { sizeMB?: number }): Promise<BenchResult[]> {
  const sizeMB = opts?.sizeMB ?? 200;
  const bytes = Math.round(sizeMB * MB);
  const work = tempDir('kiln-nfs-bench-');
  const exp = makeExport('bench', { root: join(work, 'export') });
  mkdirSync(exp.root);
  const nfs = await startNfs([exp]);
  try {
    const src = join(work, 'src.bin');
    writeRandomFile(src, bytes);
    const cpSecs = await timed('cp', [src, join(work, 'cp.bin')]);
    // Flush and drop cp's copy so its writeback does not run during the NFS write.
    const cpFd = openSync(join(work, 'cp.bin'), 'r');
    fsyncSync(cpFd);
    closeSync(cpFd);
    rmSync(join(work, 'cp.bin'));
    const writeSecs = await timed('nfs-cp', [src, nfs.url(`/${exp.id}/bench.bin`)]);
    const readSecs = await timed('nfs-cp', [nfs.url(`/${exp.id}/bench.bin`), join(work, 'back.bin')]);
    for (const p of [join(exp.root, 'bench.bin'), join(work, 'back.bin')]) {
      if (statSync(p).size !== bytes) throw new Error(`size mismatch for ${p}`);
    }
    const cp = bytes / MB / cpSecs;
    const w = bytes / MB / writeSecs;
    const r = bytes / MB / readSecs;
    const note = `${sizeMB} MB file, 1 MiB RPCs over loopback TCP`;
    return [
      { name: 'nfs.write.nfs-cp', value: round(w), unit: 'MB/s', note: `${note}; ${round(writeSecs)} s` },
      { name: 'nfs.read.nfs-cp', value: round(r), unit: 'MB/s', note: `${note}; ${round(readSecs)} s` },
      { name: 'nfs.local-cp', value: round(cp), unit: 'MB/s', note: `local cp of the same file; ${round(cpSecs)} s` },
      { name: 'nfs.write.vs-cp', value: round(w / cp), unit: 'ratio', note: 'nfs-cp write / local cp' },
      { name: 'nfs.read.vs-cp', value: round(r / cp), unit: 'ratio', note: 'nfs-cp read / local cp' },
    ];
  } finally {
    await nfs.close();
    removeDir(work);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const sizeMB = Number(process.env.NFS_BENCH_MB ?? 200);
  for (const r of await runNfsBench({ sizeMB })) {
    console.log(`${r.name.padEnd(20)} ${String(r.value).padStart(10)} ${r.unit}${r.note ? `  (${r.note})` : ''}`);
  }
}
