import { spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** What the bench rows that move files (files.ts, nfs.ts) share: a one-session Kiln's templates, timed commands, test files. */

const REPO_TEMPLATES = fileURLToPath(new URL('../../../templates', import.meta.url));
/** MB here is 10^6 bytes, for both the file sizes and the rates (the files and NFS rows). */
export const MB = 1_000_000;

/** Only the nodejs template, one warm sandbox: the bench uses a single session. */
export function templatesDir(dataDir: string): string {
  const dir = join(dataDir, 'templates');
  mkdirSync(dir, { recursive: true });
  for (const file of readdirSync(REPO_TEMPLATES).filter((f) => f === 'nodejs.json')) {
    const t = JSON.parse(readFileSync(join(REPO_TEMPLATES, file), 'utf8')) as { pool: Record<string, number> };
    t.pool.minIdle = 1;
    writeFileSync(join(dir, file), JSON.stringify(t));
  }
  return dir;
}

/** Runs a command to completion and returns its wall time in seconds; throws on failure. */
export function timed(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve((performance.now() - t0) / 1000);
      else reject(new Error(`${cmd} ${args.join(' ')} failed (${code}): ${stderr.trim()}`));
    });
  });
}

/** A file of `bytes` random bytes (incompressible), written through to disk. */
export function writeRandomFile(path: string, bytes: number): void {
  const chunk = Buffer.allocUnsafe(1 << 20);
  const fd = openSync(path, 'w');
  try {
    for (let done = 0; done < bytes; ) {
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

/** Flushes a copy to disk and deletes it, so its writeback does not overlap the next timing. */
export function flushAndRemove(path: string): void {
  const fd = openSync(path, 'r');
  fsyncSync(fd);
  closeSync(fd);
  rmSync(path);
}
