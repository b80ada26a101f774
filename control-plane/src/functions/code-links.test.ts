import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CodeLinks, CODE_LINK_PREFIX } from './code-links.js';
import type { FunctionVersionRecord } from './types.js';
import { readZip } from './zip.js';

const files = [
  { path: 'index.js', content: Buffer.from('exports.handler = async () => 1;').toString('base64'), mode: 0o644 },
  { path: 'bin/bootstrap', content: Buffer.from('#!/bin/sh\necho hi\n').toString('base64'), mode: 0o755 },
];
const packages = { load: (key: string) => Promise.resolve(key === 'code/t/f/abc' ? files : undefined) };
const record = { codeBlob: 'code/t/f/abc', name: 'f', version: '3' } as FunctionVersionRecord;
const tokenOf = (url: string) => url.slice(url.indexOf(CODE_LINK_PREFIX) + CODE_LINK_PREFIX.length);

describe('code links', () => {
  it('download the package as a zip that reads back as the same files and modes', async () => {
    const links = new CodeLinks(randomBytes(32), packages);
    const { name, zip } = await links.zip(tokenOf(links.url('http://kiln', record)));
    expect(name).toBe('f');
    expect(readZip(zip).map((e) => ({ path: e.path, content: e.content.toString('base64'), mode: e.mode }))).toEqual(files);
  });

  it('refuse an expired link, a tampered one and another deployment\'s', async () => {
    const links = new CodeLinks(randomBytes(32), packages);
    const now = Date.now();
    const token = tokenOf(links.url('http://kiln', record, now));
    await expect(links.zip(token, now + 10 * 60_000 + 1)).rejects.toMatchObject({ code: 'CodeLinkRefused', status: 403 });
    const [payload = '', signature = ''] = token.split('.');
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
    const forged = Buffer.from(JSON.stringify({ ...claims, b: 'code/other/g/abc' })).toString('base64url');
    await expect(links.zip(`${forged}.${signature}`)).rejects.toMatchObject({ code: 'CodeLinkRefused' });
    await expect(links.zip(`${payload}.${'0'.repeat(64)}`)).rejects.toMatchObject({ code: 'CodeLinkRefused' });
    await expect(links.zip(`${payload}`)).rejects.toMatchObject({ code: 'CodeLinkRefused' });
    await expect(new CodeLinks(randomBytes(32), packages).zip(token)).rejects.toMatchObject({ code: 'CodeLinkRefused' });
  });

  it('answer 404 CodeMissing once the package is gone', async () => {
    const links = new CodeLinks(randomBytes(32), packages);
    await expect(links.zip(tokenOf(links.url('http://kiln', { ...record, codeBlob: 'code/t/f/gone' })))).rejects.toMatchObject({ code: 'CodeMissing', status: 404 });
  });
});
