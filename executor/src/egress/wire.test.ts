import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildAnswer, parseQuery, RCODE } from './dns-wire.js';
import { decideAddress, decideName, normalisePolicy, widening } from './policy.js';
import { injectSecrets } from './secrets.js';
import { sniff } from './sniff.js';

/** A DNS query for `name` (type A), as a resolver sends it. */
function query(name: string, id = 0x1234): Buffer {
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  return Buffer.concat([Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]), ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}

describe('egress wire readers', () => {
  it('read a DNS question and answer it with A records', () => {
    const q = parseQuery(query('API.Example.test'));
    expect(q).toMatchObject({ id: 0x1234, name: 'api.example.test', type: 1, recursionDesired: true });
    const a = buildAnswer(q!, RCODE.noError, ['127.100.0.1']);
    expect(a.readUInt16BE(6)).toBe(1);
    expect([...a.subarray(-4)]).toEqual([127, 100, 0, 1]);
  });

  it('never throw on what a sandbox may send: random bytes, truncations, pointers', () => {
    const tls = Buffer.from('1603010200010001fc0303', 'hex');
    for (let i = 0; i < 3_000; i++) {
      const junk = randomBytes(i % 600);
      expect(() => parseQuery(junk)).not.toThrow();
      expect(() => sniff(junk)).not.toThrow();
      expect(() => sniff(Buffer.concat([tls, junk]))).not.toThrow();
      const q = query('a.example.test');
      expect(() => parseQuery(q.subarray(0, i % q.length))).not.toThrow();
    }
    expect(parseQuery(Buffer.concat([query('x').subarray(0, 12), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1])]))).toBeUndefined();
  });

  it('read the Host of an HTTP request, refusing two of them', () => {
    expect(sniff(Buffer.from('GET / HTTP/1.1\r\nHost: Api.Example.test:8080\r\n\r\n'))).toEqual({ kind: 'http', host: 'api.example.test' });
    expect(sniff(Buffer.from('GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n'))).toEqual({ kind: 'http', host: undefined });
    expect(sniff(Buffer.from('GET / HTTP/1.1\r\nHost: a'))).toEqual({ kind: 'partial' });
    expect(sniff(Buffer.from('SSH-2.0-x\r\n'))).toEqual({ kind: 'other' });
  });
});

describe('egress policy', () => {
  const template = normalisePolicy({ allow: { domains: ['*.example.test', 'pypi.org'], cidrs: ['203.0.113.0/24'], ports: [80, 443] }, deny: { domains: ['bad.example.test'] } });

  it('matches wildcards below a name, not the name, and lets deny win', () => {
    expect(decideName(template, 'a.b.example.test', 443)).toEqual({ allowed: true, rule: 'allow.domains:*.example.test' });
    expect(decideName(template, 'example.test', 443).allowed).toBe(false);
    expect(decideName(template, 'bad.example.test', 443)).toEqual({ allowed: false, rule: 'deny.domains:bad.example.test' });
    expect(decideName(template, 'pypi.org', 22)).toEqual({ allowed: false, rule: 'allow.ports' });
    expect(decideName(template, 'evilpypi.org', 443).allowed).toBe(false);
  });

  it('keeps names off private, link-local and host addresses unless a CIDR rule lists them', () => {
    const hosts = new Set(['198.51.100.7']);
    expect(decideAddress(template, '93.184.216.34', 443, false, hosts)).toEqual({ allowed: true, rule: 'public' });
    expect(decideAddress(template, '93.184.216.34', 443, true, hosts)).toEqual({ allowed: false, rule: 'default' });
    expect(decideAddress(template, '10.1.2.3', 443, false, hosts)).toEqual({ allowed: false, rule: 'private' });
    expect(decideAddress(template, '169.254.169.254', 80, false, hosts)).toEqual({ allowed: false, rule: 'never' });
    expect(decideAddress(template, '198.51.100.7', 80, false, hosts)).toEqual({ allowed: false, rule: 'never' });
    expect(decideAddress(template, '203.0.113.9', 80, true, hosts)).toEqual({ allowed: true, rule: 'allow.cidrs:203.0.113.0/24' });
    expect(decideAddress(normalisePolicy('all'), '93.184.216.34', 443, true, hosts)).toEqual({ allowed: true, rule: 'allow.all' });
  });

  it('lets a session narrow its template and names every way it would widen it', () => {
    expect(widening(template, normalisePolicy({ allow: { domains: ['x.example.test', '*.a.example.test'], cidrs: ['203.0.113.0/25'], ports: [443] } }))).toEqual([]);
    expect(widening(template, normalisePolicy({ allow: { all: true, domains: ['example.test'], cidrs: ['203.0.112.0/23'], ports: [22] } }))).toHaveLength(4);
    expect(widening(normalisePolicy('all'), normalisePolicy({ allow: { cidrs: ['8.8.8.0/24', '10.0.0.0/8'] } }))).toEqual(["allow.cidrs: 10.0.0.0/8 is not within the template's networks"]);
  });
});

describe('secret injection', () => {
  const secret = { placeholder: 'kiln-secret-tok-0123456789abcdef', value: 'sk-1', hosts: ['api.example.test'], header: 'Authorization', format: 'Bearer {value}' };
  const head = 'GET / HTTP/1.1\r\nHost: api.example.test\r\nauthorization: Basic x\r\nX-T: kiln-secret-tok-0123456789abcdef\r\nConnection: keep-alive\r\n\r\n';

  it('sets the header, replaces the placeholder and closes the connection after the request, for bound hosts only', () => {
    expect(injectSecrets(head, 'api.example.test', [secret])).toBe('GET / HTTP/1.1\r\nHost: api.example.test\r\nX-T: sk-1\r\nAuthorization: Bearer sk-1\r\nConnection: close\r\n\r\n');
    expect(injectSecrets(head, 'other.example.test', [secret])).toBeUndefined();
  });
});
