import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkTar, entryPath, UnsafeArchiveError } from './tar-guard.js';

/** One ustar header (and data) as a hostile archive writer would make it. */
function entry(name: string, opts: { type?: string; link?: string; data?: string; prefix?: string } = {}): Buffer {
  const data = Buffer.from(opts.data ?? '');
  const h = Buffer.alloc(512);
  h.write(name, 0, 100);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(data.length.toString(8).padStart(11, '0') + '\0', 124);
  h.write('00000000000\0', 136);
  h.write(opts.type ?? '0', 156);
  h.write(opts.link ?? '', 157, 100);
  h.write('ustar\0', 257);
  h.write('00', 263);
  if (opts.prefix) h.write(opts.prefix, 345, 155);
  h.write('        ', 148);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return Buffer.concat([h, data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
}

function pax(records: Record<string, string>): Buffer {
  const body = Object.entries(records)
    .map(([k, v]) => {
      const rec = ` ${k}=${v}\n`;
      let len = rec.length + 1;
      while (`${len}${rec}`.length !== len) len = `${len}${rec}`.length;
      return `${len}${rec}`;
    })
    .join('');
  return entry('PaxHeader', { type: 'x', data: body });
}

const tar = (...parts: Buffer[]): Buffer => Buffer.concat([...parts, Buffer.alloc(1024)]);
const refused = (t: Buffer): string => {
  try {
    checkTar(t);
  } catch (err) {
    expect(err).toBeInstanceOf(UnsafeArchiveError);
    return (err as UnsafeArchiveError).message;
  }
  throw new Error('the archive was accepted');
};

describe('checkTar', () => {
  it('accepts what GNU tar makes of a workspace, symlinks to /etc included', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tar-guard-'));
    try {
      mkdirSync(join(dir, 'sub/deeper'), { recursive: true });
      writeFileSync(join(dir, 'sub/deeper/a.txt'), 'a');
      writeFileSync(join(dir, `${'long-name-'.repeat(20)}.txt`), 'b');
      symlinkSync('/etc', join(dir, 'etc-link'));
      symlinkSync('../../etc/passwd', join(dir, 'sub/up-link'));
      const made = execFileSync('tar', ['-c', '-C', dir, '.']);
      expect(checkTar(made)).toBeGreaterThanOrEqual(6);
      const paxMade = execFileSync('tar', ['--format=pax', '-c', '-C', dir, '.']);
      expect(checkTar(paxMade)).toBeGreaterThanOrEqual(6);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses absolute names, ".." components and NULs, in every place a name can hide', () => {
    expect(refused(tar(entry('/etc/passwd', { data: 'x' })))).toMatch(/absolute/);
    expect(refused(tar(entry('../../etc/cron.d/x', { data: 'x' })))).toMatch(/\.\./);
    expect(refused(tar(entry('./a/../../x', { data: 'x' })))).toMatch(/\.\./);
    expect(refused(tar(entry('x', { prefix: '/etc', data: 'x' })))).toMatch(/absolute/);
    expect(refused(tar(entry('x', { prefix: '..', data: 'x' })))).toMatch(/\.\./);
    expect(refused(tar(pax({ path: '/etc/shadow' }), entry('harmless', { data: 'x' })))).toMatch(/absolute/);
    expect(refused(tar(pax({ path: 'a/../../b' }), entry('harmless', { data: 'x' })))).toMatch(/\.\./);
    expect(refused(tar(entry('././@LongLink', { type: 'L', data: '../../../root/.ssh/authorized_keys\0' }), entry('harmless', { data: 'x' })))).toMatch(/\.\./);
    expect(() => entryPath('a\0b')).toThrow(UnsafeArchiveError);
  });

  it('refuses writing through a symlink of the same archive, and hard links that leave it', () => {
    expect(refused(tar(entry('./etc', { type: '2', link: '/etc' }), entry('./etc/passwd', { data: 'root::0:0::/:/bin/sh' })))).toMatch(/through a symlink/);
    expect(refused(tar(entry('link', { type: '2', link: '/' }), entry('link', { data: 'overwrite the target' })))).toMatch(/through a symlink/);
    expect(refused(tar(entry('pw', { type: '1', link: '/etc/passwd' })))).toMatch(/absolute/);
    expect(refused(tar(entry('pw', { type: '1', link: '../../etc/passwd' })))).toMatch(/\.\./);
    expect(refused(tar(entry('s', { type: '2', link: '/etc' }), entry('pw', { type: '1', link: 's/passwd' })))).toMatch(/hard link/);
    expect(refused(tar(pax({ linkpath: '/etc/shadow' }), entry('pw', { type: '1' })))).toMatch(/absolute/);
  });

  it('refuses devices, unknown entry types, bad checksums and truncation', () => {
    expect(refused(tar(entry('sda', { type: '4' })))).toMatch(/not allowed/);
    expect(refused(tar(entry('mem', { type: '3' })))).toMatch(/not allowed/);
    expect(refused(tar(entry('vol', { type: 'V' })))).toMatch(/not allowed/);
    const bad = entry('a.txt', { data: 'x' });
    bad[0] = 'b'.charCodeAt(0);
    expect(refused(tar(bad))).toMatch(/checksum/);
    expect(refused(entry('a.txt', { data: 'x'.repeat(1000) }).subarray(0, 700))).toMatch(/truncated/);
    expect(refused(Buffer.alloc(100))).toMatch(/truncated/);
  });
});
