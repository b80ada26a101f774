/**
 * Large files through a session's files API: a 2 GiB file in and out with a checksum while the
 * control plane's memory stays flat (it runs in this process, so its RSS is ours), Range
 * downloads, the per-request size limit, a cut upload that leaves nothing behind, and a symlink
 * swap by the sandbox in the middle of a large upload.
 */
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, createWriteStream, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { sessionSh, withSession, type NfsSession } from '../support/nfs.js';

const MB = 1024 * 1024;
/** FILES_LARGE_MB shrinks it for a quick local check; the test as committed moves 2 GiB. */
const BIG_MB = Number(process.env.FILES_LARGE_MB ?? 2048);
const MAX_FILE_BYTES = 2200 * MB;
/** RSS may grow by at most this much while 2 GiB pass through (buffers, JIT, GC slack). */
const FLAT_MB = 300;

let k: TestKiln;
let outside: string;
beforeAll(async () => {
  k = await startTestKiln({
    templates: { nodejs: { pool: { minIdle: 1 }, resources: { diskMB: 2400 } }, python: null, shell: null, provided: null },
    env: { KILN_MAX_FILE_BYTES: String(MAX_FILE_BYTES) },
  });
  // A host directory the executor could write into if it followed a link the sandbox made.
  outside = mkdtempSync(join(tmpdir(), 'kiln-outside-'));
  chmodSync(outside, 0o777);
}, 120_000);
afterAll(async () => {
  await k?.stop();
  if (outside) rmSync(outside, { recursive: true, force: true });
});

const filesUrl = (id: string, path: string): string => `${k.url}/api/v1/sessions/${id}/files?path=${encodeURIComponent(path)}`;
const sh = (s: NfsSession, script: string) => sessionSh(k, s, script);

/** Deterministic pseudo-random bytes (AES-CTR over zeros), `chunkMB` at a time, with a hash as they go. */
function generated(totalMB: number, hash = createHash('sha256'), chunkMB = 1, gate?: (sentMB: number) => Promise<void>): { stream: ReadableStream<Uint8Array>; hash: ReturnType<typeof createHash> } {
  const cipher = createCipheriv('aes-128-ctr', Buffer.alloc(16, 7), Buffer.alloc(16, 0));
  const zeros = Buffer.alloc(chunkMB * MB);
  let sent = 0;
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (sent >= totalMB) return controller.close();
      if (gate) await gate(sent);
      const chunk = cipher.update(zeros);
      hash.update(chunk);
      sent += chunkMB;
      controller.enqueue(chunk);
    },
  });
  return { stream, hash };
}

/** Runs curl (arguments joined for bash, so a `|` pipes); its stdout, or throws with its stderr. */
function curl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', `set -o pipefail; curl ${args.map((a) => (a === '|' ? '|' : `'${a}'`)).join(' ')}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`curl exited ${code}: ${err}`))));
  });
}

/** Samples this process's RSS until stopped; returns the peak in MB. */
function rssSampler(): { stop(): number } {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 100);
  return { stop: () => (clearInterval(timer), Math.round(peak / MB)) };
}

describe('large files through the files API', () => {
  it('moves a 2 GiB file (FILES_LARGE_MB) in and out with the same sha256, the control plane staying flat in memory', async () => {
    // curl moves the bytes from and to a file on disk, so this process's RSS is the control plane's.
    const file = join(outside, '..', `kiln-big-${randomBytes(4).toString('hex')}.bin`);
    try {
      const hash = createHash('sha256');
      const cipher = createCipheriv('aes-128-ctr', Buffer.alloc(16, 7), Buffer.alloc(16, 0));
      const out = createWriteStream(file);
      for (let i = 0; i < BIG_MB; i++) {
        const chunk = cipher.update(Buffer.alloc(MB));
        hash.update(chunk);
        if (!out.write(chunk)) await once(out, 'drain');
      }
      await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
      const sum = hash.digest('hex');
      await withSession(k, async (s) => {
        const before = Math.round(process.memoryUsage().rss / MB);
        const up = rssSampler();
        const put = await curl(['-sS', '-T', file, '-H', 'content-type: application/octet-stream', filesUrl(s.id, 'big/2g.bin')]);
        const upPeak = up.stop();
        expect(JSON.parse(put)).toMatchObject({ size: BIG_MB * MB });
        expect((await sh(s, 'sha256sum /workspace/big/2g.bin | cut -d" " -f1')).stdout.trim()).toBe(sum);

        const beforeDown = Math.round(process.memoryUsage().rss / MB);
        const down = rssSampler();
        const back = await curl(['-sS', '-f', filesUrl(s.id, 'big/2g.bin'), '|', 'sha256sum']);
        const downPeak = down.stop();
        expect(back.split(' ')[0]).toBe(sum);
        console.log(`rss before ${before} MB, peak during upload ${upPeak} MB; before download ${beforeDown} MB, peak during it ${downPeak} MB`);
        expect(upPeak - before).toBeLessThan(FLAT_MB);
        expect(downPeak - beforeDown).toBeLessThan(FLAT_MB);
      });
    } finally {
      rmSync(file, { force: true });
    }
  }, 1_500_000);

  it('answers one Range with 206 and Content-Range, honours If-Range, and refuses unsatisfiable or several ranges with 416', async () => {
    await withSession(k, async (s) => {
      const data = randomBytes(MB);
      expect((await fetch(filesUrl(s.id, 'r.bin'), { method: 'PUT', body: data })).status).toBe(200);
      const get = (range?: string, extra: Record<string, string> = {}) => fetch(filesUrl(s.id, 'r.bin'), { headers: { ...(range ? { range } : {}), ...extra } });
      const whole = await get();
      expect(whole.status).toBe(200);
      expect(whole.headers.get('accept-ranges')).toBe('bytes');
      const etag = whole.headers.get('etag') as string;
      expect(etag).toMatch(/^"[0-9a-f]+-[0-9a-f]+"$/);
      expect(Buffer.from(await whole.arrayBuffer()).equals(data)).toBe(true);

      const cases: [string, number, number][] = [
        ['bytes=100-199', 100, 199],
        ['bytes=1048000-', 1048000, MB - 1],
        ['bytes=-10', MB - 10, MB - 1],
        ['bytes=5-99999999', 5, MB - 1],
      ];
      for (const [range, start, end] of cases) {
        const res = await get(range);
        expect(res.status, range).toBe(206);
        expect(res.headers.get('content-range'), range).toBe(`bytes ${start}-${end}/${MB}`);
        expect(res.headers.get('content-length'), range).toBe(String(end - start + 1));
        expect(Buffer.from(await res.arrayBuffer()).equals(data.subarray(start, end + 1)), range).toBe(true);
      }
      for (const range of [`bytes=${MB}-`, 'bytes=-0', 'bytes=0-1,5-9']) {
        const res = await get(range);
        expect(res.status, range).toBe(416);
        expect(res.headers.get('content-range'), range).toBe(`bytes */${MB}`);
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe('RangeNotSatisfiable');
      }
      // Not a bytes range, or malformed: the whole file, as RFC 9110 lets a server do.
      for (const range of ['items=0-1', 'bytes=9-3', 'bytes=abc']) expect((await get(range)).status, range).toBe(200);
      // If-Range: the range only while the file is the one the ETag names.
      expect((await get('bytes=0-9', { 'if-range': etag })).status).toBe(206);
      expect((await get('bytes=0-9', { 'if-range': '"0-0"' })).status).toBe(200);
      // A range of a directory or a missing file is the read's own 4xx.
      expect((await get('bytes=0-9').then(() => fetch(filesUrl(s.id, 'nope.bin'), { headers: { range: 'bytes=0-9' } }))).status).toBe(404);
      expect((await fetch(filesUrl(s.id, '.'), { headers: { range: 'bytes=0-9' } })).status).toBe(400);
    });
  }, 120_000);

  it('refuses a Content-Length over KILN_MAX_FILE_BYTES with 413 before reading the body', async () => {
    await withSession(k, async (s) => {
      const declared = MAX_FILE_BYTES + 1;
      const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request(filesUrl(s.id, 'huge.bin'), { method: 'PUT', headers: { 'content-length': String(declared), 'content-type': 'application/octet-stream' } }, (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        });
        req.on('error', reject);
        // A few bytes only: the answer must not wait for the rest.
        req.write(Buffer.alloc(1024));
      });
      expect(status).toBe(413);
      expect(JSON.parse(body)).toMatchObject({ error: { code: 'PayloadTooLarge', data: { maxBytes: MAX_FILE_BYTES, declared } } });
      expect((await sh(s, 'ls -A /workspace')).stdout).not.toMatch(/huge|kiln-upload/);
    });
  }, 120_000);

  it('keeps the old file and leaves no partial one when an upload is cut off', async () => {
    await withSession(k, async (s) => {
      expect((await fetch(filesUrl(s.id, 'keep.txt'), { method: 'PUT', body: 'old contents' })).status).toBe(200);
      const abort = new AbortController();
      const { stream } = generated(256, createHash('sha256'), 1, (sentMB) => {
        if (sentMB === 32) abort.abort();
        return Promise.resolve();
      });
      await expect(fetch(filesUrl(s.id, 'keep.txt'), { method: 'PUT', body: stream, duplex: 'half', signal: abort.signal })).rejects.toThrow();
      // The executor notices the cut stream and removes what it wrote; give it the time a loaded machine needs.
      let listing = '';
      for (let i = 0; i < 60; i++) {
        listing = (await sh(s, 'ls -A /workspace; cat /workspace/keep.txt')).stdout;
        if (!listing.includes('kiln-upload')) break;
        await new Promise((r) => setTimeout(r, 500));
      }
      expect(listing).not.toContain('kiln-upload');
      expect(listing).toContain('old contents');
    });
  }, 120_000);

  it('never follows a link the sandbox swaps in for the target directory or the file in the middle of a large upload', async () => {
    await withSession(k, async (s) => {
      expect((await sh(s, 'mkdir -p /workspace/d')).exitCode).toBe(0);
      let swapped!: () => void;
      const swappedNow = new Promise<void>((r) => (swapped = r));
      let reached!: () => void;
      const reachedGate = new Promise<void>((r) => (reached = r));
      const { stream, hash } = generated(128, createHash('sha256'), 1, async (sentMB) => {
        if (sentMB === 16) {
          reached();
          await swappedNow;
        }
      });
      const put = fetch(filesUrl(s.id, 'd/big.bin'), { method: 'PUT', body: stream, duplex: 'half' });
      await reachedGate;
      // Wait until the executor has the upload open in d, then move d away, put a link to a host
      // directory in its place, and plant a link where the file will land.
      let seen = '';
      for (let i = 0; i < 120 && !seen.includes('kiln-upload'); i++) {
        seen = (await sh(s, 'ls -A /workspace/d')).stdout;
        if (!seen.includes('kiln-upload')) await new Promise((r) => setTimeout(r, 250));
      }
      expect(seen).toContain('kiln-upload');
      const swap = await sh(s, `mv /workspace/d /workspace/d.old && ln -s ${outside} /workspace/d && ln -s ${outside}/planted /workspace/d.old/big.bin && echo swapped`);
      expect(swap.stdout).toContain('swapped');
      swapped();
      const res = await put;
      const body = (await res.json()) as Record<string, unknown>;
      // Whatever the answer, nothing reached the host directory.
      expect(readdirSync(outside)).toEqual([]);
      expect(res.status, JSON.stringify(body)).toBe(200);
      // The bytes landed in the directory the upload had pinned, as a regular file in place of the planted link.
      const check = await sh(s, 'test -L /workspace/d && test -f /workspace/d.old/big.bin && ! test -L /workspace/d.old/big.bin && sha256sum /workspace/d.old/big.bin | cut -d" " -f1');
      expect(check.stdout.trim()).toBe(hash.digest('hex'));
      expect((await sh(s, 'ls -A /workspace/d.old')).stdout.trim()).toBe('big.bin');
    });
  }, 300_000);
});
