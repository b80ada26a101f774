import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { startTestInternet, type TestInternet } from './egress-internet.js';

/**
 * HTTPS secret injection (executor/src/egress/intercept.ts): a secret with `https: true` makes
 * Kiln's proxy end TLS for its hosts with the deployment's egress CA, put the value in, and open
 * TLS to the real host itself, verifying it against the test CA Kiln trusts by configuration
 * (KILN_EGRESS_UPSTREAM_CA). Other hosts stay pass-through: the sandbox sees their own
 * certificate. The CA key never reaches the sandbox.
 */

const tag = randomBytes(3).toString('hex');
const EGRESS = `egress-https-${tag}`;
const API = 'api.example.test';
const PASS = 'pass.example.test';
/** Allowed, but not in the test server's certificate: Kiln's own TLS to it must fail verification. */
const WRONG = 'x.wild.example.test';
const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

let net: TestInternet;
let k: TestKiln;
let dir: string;

beforeAll(async () => {
  net = await startTestInternet(({ web }) => ({ [API]: web, [PASS]: web, [WRONG]: web }), [API, PASS]);
  dir = mkdtempSync(join(tmpdir(), 'kiln-https-'));
  writeFileSync(join(dir, 'upstream-ca.pem'), net.caPem);
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 0 } }, python: null, shell: null, provided: null }, env: { KILN_EGRESS_DNS: net.dns, KILN_EGRESS_UPSTREAM_CA: join(dir, 'upstream-ca.pem') } });
  const base = JSON.parse(readFileSync(new URL('../../../templates/nodejs.json', import.meta.url), 'utf8'));
  const res = await k.call('POST', '/api/v1/templates', { ...base, name: EGRESS, network: { allow: { domains: [API, PASS, '*.wild.example.test'], cidrs: [`${net.web}/32`], ports: [80, 443] } }, pool: { ...base.pool, minIdle: 0 } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
}, 90_000);

afterAll(async () => {
  await k?.stop();
  net?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function run(id: string, script: string, extra: Record<string, unknown> = {}): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const res = await k.call('POST', `/api/v1/sessions/${id}/process/run`, { command: 'sh', args: ['-c', script], timeoutMs: 60_000, ...extra });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

describe('HTTPS secret injection', () => {
  it('injects into HTTPS to opted-in hosts only (curl, Node fetch), verifies the real host, and never hands the sandbox the CA key', async () => {
    const value = `sk-https-${randomBytes(16).toString('hex')}`;
    const other = `sk-wrong-${randomBytes(16).toString('hex')}`;
    expect((await k.call('PUT', '/api/v1/secrets/tok', { value, hosts: [API], header: 'X-Api-Key', format: '{value}', https: true })).status).toBe(200);
    expect((await k.call('PUT', '/api/v1/secrets/wrong', { value: other, hosts: [WRONG], https: true })).status).toBe(200);
    const created = await k.call('POST', '/api/v1/sessions', { template: EGRESS, secrets: ['tok', 'wrong'] });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = created.body.id as string;
    try {
      // Made by the platform when it started the template's first executor.
      const caKey = readFileSync(join(k.dataDir, 'egress-ca', 'ca.key'), 'utf8');
      const keyBody = caKey.split('\n').filter((l) => l && !l.startsWith('-----')).join('');
      expect(keyBody.length).toBeGreaterThan(40);
      await run(id, 'cat > /workspace/test-ca.pem', { stdin: net.caPem });
      const env = (await run(id, 'env')).stdout;
      expect(env).toContain('SSL_CERT_FILE=/etc/kiln/ca-bundle.pem');
      expect(env).toContain('NODE_EXTRA_CA_CERTS=/etc/kiln/egress-ca.pem');

      // curl with no options: it trusts Kiln's CA through CURL_CA_BUNDLE; the header and the placeholder are filled in.
      const viaCurl = await run(id, `curl -sS -m 20 -H "X-Token: $KILN_SECRET_TOK" https://${API}/hashed`);
      expect(viaCurl.stderr).toBe('');
      const h = JSON.parse(viaCurl.stdout).headers as Record<string, string>;
      expect([h['X-Api-Key'], h['X-Token']]).toEqual([sha(value), sha(value)]);
      // Node 20's fetch, through NODE_EXTRA_CA_CERTS.
      const viaNode = await run(id, `node -e "fetch('https://${API}/hashed').then((r) => r.json()).then((b) => console.log(b.headers['X-Api-Key']))"`);
      expect([viaNode.stdout.trim(), viaNode.stderr]).toEqual([sha(value), '']);
      // Intercepted: the certificate the sandbox sees is Kiln's, so the test CA alone does not verify it...
      expect((await run(id, `curl -sS -m 20 --cacert /workspace/test-ca.pem -o /dev/null https://${API}/`)).exitCode).toBe(60);
      // ...while a host without an https secret is passed through: its own certificate, which Kiln's bundle does not vouch for.
      const pass = await run(id, `curl -sS -m 20 --cacert /workspace/test-ca.pem -H "X-Token: $KILN_SECRET_TOK" https://${PASS}/hashed`);
      expect(pass.exitCode, pass.stderr).toBe(0);
      const ph = JSON.parse(pass.stdout).headers as Record<string, string>;
      expect([ph['X-Api-Key'], ph['X-Token'] === sha(value)]).toEqual([undefined, false]);
      expect((await run(id, `curl -sS -m 20 -o /dev/null https://${PASS}/`)).exitCode).toBe(60);
      // Another name inside the intercepted TLS (fronting) is refused before anything is sent.
      expect((await run(id, `curl -sS -m 20 -o /dev/null -H "Host: ${PASS}" https://${API}/hashed`)).exitCode).not.toBe(0);
      // Kiln verifies the real host: one whose certificate does not name it never gets the request.
      expect((await run(id, `curl -sS -m 20 -o /dev/null https://${WRONG}/hashed`)).exitCode).not.toBe(0);

      // The sandbox holds neither value nor the CA key: environments, command lines, and every small readable file.
      const scan = await run(id, 'env; for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do cat "$f" 2>/dev/null; echo; done; find / -xdev -type f -readable -size -1M 2>/dev/null | grep -v "^/proc\\|^/sys\\|^/usr" | xargs cat 2>/dev/null; ls /etc/kiln', { timeoutMs: 60_000 });
      expect(scan.stdout).toContain('egress-ca.pem');
      for (const needle of [value, other, keyBody, keyBody.slice(0, 40)]) expect(scan.stdout).not.toContain(needle);
      expect(scan.stdout).not.toContain('PRIVATE KEY');
      const direct = await run(id, `cat ${join(k.dataDir, 'egress-ca', 'ca.key')}`);
      expect(direct.exitCode).not.toBe(0);

      const audit = (await k.call('GET', `/api/v1/sessions/${id}/network/audit`)).body.records as Array<{ domain: string; detail: string; protocol: string }>;
      expect(JSON.stringify(audit)).not.toContain(value);
      expect(audit.filter((r) => r.detail === 'https intercepted; secrets injected').map((r) => r.domain)).toEqual([API, API]);
      expect(audit.some((r) => r.domain === API && r.detail.startsWith('https intercepted; refused: Host'))).toBe(true);
      expect(audit.some((r) => r.domain === WRONG && r.detail.includes('upstream TLS error'))).toBe(true);
    } finally {
      await k.call('DELETE', `/api/v1/sessions/${id}`);
      await k.call('DELETE', '/api/v1/secrets/tok');
      await k.call('DELETE', '/api/v1/secrets/wrong');
    }
  }, 180_000);
});
