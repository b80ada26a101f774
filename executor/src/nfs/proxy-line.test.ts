import { describe, expect, it } from 'vitest';
import { AUTH_LINE_BYTES, proxyAuthLine, readProxyAuth, TrustedProxies, readProxyPreamble } from './proxy-line.js';

describe('PROXY v1 preamble', () => {
  it('reads the client address and hands back the bytes after the line', () => {
    const p = readProxyPreamble(Buffer.concat([Buffer.from('PROXY TCP4 10.1.2.3 10.0.0.1 40000 2049\r\n'), Buffer.from([0x80, 0])]));
    expect(p).toMatchObject({ kind: 'line', client: '10.1.2.3' });
    if (p.kind === 'line') expect([...p.rest]).toEqual([0x80, 0]);
    expect(readProxyPreamble(Buffer.from('PROXY TCP6 fd00::5 fd00::1 1 2\r\n'))).toMatchObject({ kind: 'line', client: 'fd00::5' });
    expect(readProxyPreamble(Buffer.from('PROXY UNKNOWN\r\n'))).toMatchObject({ kind: 'line', client: undefined });
  });

  it('waits for more bytes, tells RPC records apart, and refuses malformed or endless lines', () => {
    expect(readProxyPreamble(Buffer.from('PRO')).kind).toBe('need-more');
    expect(readProxyPreamble(Buffer.from('PROXY TCP4 10.1.2.3')).kind).toBe('need-more');
    expect(readProxyPreamble(Buffer.from('80000028', 'hex')).kind).toBe('none');
    expect(readProxyPreamble(Buffer.alloc(0)).kind).toBe('need-more');
    for (const bad of ['PROXY TCP4 10.1.2.3 10.0.0.1 1\r\n', 'PROXY TCP4 fd00::1 10.0.0.1 1 2\r\n', 'PROXY TCP4 10.1.2.3 10.0.0.1 1 70000\r\n', 'PROXY UDP4 1.2.3.4 1.2.3.4 1 2\r\n']) {
      expect(readProxyPreamble(Buffer.from(bad)).kind, bad).toBe('invalid');
    }
    expect(readProxyPreamble(Buffer.from('PROXY ' + 'x'.repeat(120))).kind).toBe('invalid');
  });

  it('trusts only listed peers, IPv4-mapped addresses included, and nobody when empty', () => {
    const t = new TrustedProxies(['127.0.0.1', '10.0.0.0/8', '::1']);
    expect(t.trusts('127.0.0.1')).toBe(true);
    expect(t.trusts('::ffff:10.9.9.9')).toBe(true);
    expect(t.trusts('::1')).toBe(true);
    expect(t.trusts('127.0.0.2')).toBe(false);
    expect(t.trusts(undefined)).toBe(false);
    expect(new TrustedProxies([]).trusts('127.0.0.1')).toBe(false);
  });
});

describe('PROXY auth line', () => {
  const line = 'PROXY TCP4 10.1.2.3 10.0.0.1 40000 2049';
  it('accepts the HMAC of the line under the key, and nothing else', () => {
    const auth = Buffer.from(proxyAuthLine('k'.repeat(32), line), 'latin1');
    expect(auth.length).toBe(AUTH_LINE_BYTES);
    expect(readProxyAuth(auth, 'k'.repeat(32), line)).toBe('ok');
    expect(readProxyAuth(auth, 'other-key', line)).toBe('bad');
    expect(readProxyAuth(auth, 'k'.repeat(32), line.replace('10.1.2.3', '10.1.2.4'))).toBe('bad');
    expect(readProxyAuth(auth.subarray(0, 20), 'k'.repeat(32), line)).toBe('need-more');
    expect(readProxyAuth(Buffer.from([0x80, 0, 0, 0]), 'k'.repeat(32), line)).toBe('bad');
  });
});
