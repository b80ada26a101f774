import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readZip } from '@kiln/control-plane/functions/zip';
import { makeZip } from '../support/zip.js';

/** Rewrites the name of the first entry in both headers (same length), to craft hostile names. */
function renameFirst(zip: Buffer, from: string, to: string): Buffer {
  const out = Buffer.from(zip);
  const a = Buffer.from(from);
  const b = Buffer.from(to);
  expect(a.length).toBe(b.length);
  let i = out.indexOf(a);
  while (i !== -1) {
    b.copy(out, i);
    i = out.indexOf(a, i + 1);
  }
  return out;
}

describe('readZip (pure-TS zip reader)', () => {
  it('reads deflated and stored entries with their unix modes, skipping directories', () => {
    const zip = makeZip([
      { path: 'index.js', content: 'exports.handler = async () => 1;' },
      { path: 'lib/util.js', content: 'x'.repeat(10_000) },
      { path: 'bootstrap', content: '#!/bin/sh\necho hi\n', mode: 0o755, store: true },
      { path: 'dir/', content: '' },
    ]);
    const entries = readZip(zip);
    expect(entries.map((e) => e.path)).toEqual(['index.js', 'lib/util.js', 'bootstrap']);
    expect(entries[0]?.content.toString()).toBe('exports.handler = async () => 1;');
    expect(entries[1]?.content.length).toBe(10_000);
    expect(entries[2]?.mode).toBe(0o755);
    expect(entries[0]?.mode).toBe(0o644);
  });

  it('reads an archive made by the zip command line tool', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-zip-'));
    try {
      writeFileSync(join(dir, 'bootstrap'), '#!/bin/sh\n');
      chmodSync(join(dir, 'bootstrap'), 0o755);
      writeFileSync(join(dir, 'a.txt'), 'hello '.repeat(100));
      execFileSync('zip', ['-q', '-r', 'out.zip', 'bootstrap', 'a.txt'], { cwd: dir });
      const entries = readZip(readFileSync(join(dir, 'out.zip')));
      expect(entries.find((e) => e.path === 'bootstrap')?.mode).toBe(0o755);
      expect(entries.find((e) => e.path === 'a.txt')?.content.toString()).toBe('hello '.repeat(100));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects paths that escape the task root', () => {
    expect(() => readZip(renameFirst(makeZip([{ path: 'xx/evil.js', content: 'x' }]), 'xx/evil.js', '../evil.js'))).toThrow(/"\.\." segment/);
    expect(() => readZip(renameFirst(makeZip([{ path: 'xetc/passwd', content: 'x' }]), 'xetc/passwd', '/etc/passwd'))).toThrow(/absolute path/);
  });

  it('rejects garbage, truncation, bad CRCs, duplicates and symlinks with InvalidZip', () => {
    expect(() => readZip(Buffer.from('not a zip at all, just some text here'))).toThrow(expect.objectContaining({ code: 'InvalidZip', status: 400 }));
    const zip = makeZip([{ path: 'index.js', content: 'hello world', store: true }]);
    expect(() => readZip(zip.subarray(10))).toThrow(/InvalidZip|not a usable zip/);
    const bad = Buffer.from(zip);
    bad[bad.indexOf('hello world')] = 'j'.charCodeAt(0);
    expect(() => readZip(bad)).toThrow(/CRC/);
    expect(() => readZip(makeZip([{ path: 'a.js', content: '1' }, { path: './a.js', content: '2' }]))).toThrow(/appears twice/);
    const link = makeZip([{ path: 'link', content: '/etc/passwd' }]);
    const cd = link.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
    link.writeUInt32LE((0o120777 << 16) >>> 0, cd + 38);
    expect(() => readZip(link)).toThrow(/symbolic link/);
  });

  it('caps the total uncompressed size (a zip bomb stops before inflating)', () => {
    const zip = makeZip([{ path: 'big.bin', content: Buffer.alloc(5 * 1024 * 1024) }]);
    expect(zip.length).toBeLessThan(20_000);
    expect(() => readZip(zip, { maxUncompressedBytes: 1024 * 1024, maxEntries: 10 })).toThrow(/uncompressed size exceeds/);
    // An entry that lies about its size cannot inflate past what it declared.
    const liar = makeZip([{ path: 'small.bin', content: Buffer.alloc(1024 * 1024) }]);
    const cd = liar.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
    liar.writeUInt32LE(10, 22);
    liar.writeUInt32LE(10, cd + 24);
    expect(() => readZip(liar)).toThrow(/does not inflate|not the 10/);
  });
});
