import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inSession, startTestKiln, type TestKiln } from '../support/kiln.js';
import { startTestInternet, type TestInternet } from './egress-internet.js';

/**
 * Attacks the egress barrier (executor/src/egress/) from inside sandboxes, against a test
 * internet in a network namespace the test makes (egress-internet.ts): names through Kiln's DNS
 * only, HTTP by Host, TLS by SNI, raw TCP and IP literals by the CIDR and port rules, a policy
 * changed at run time, and the audit of all of it. Nothing a test sends leaves the machine:
 * refused destinations are refused by Kiln's proxy before it connects anywhere.
 */

const tag = randomBytes(3).toString('hex');
const EGRESS = `egress-${tag}`;
const OUTBOUND = `egress-legacy-${tag}`;
const API = 'api.example.test';
const WILD = 'x.wild.example.test';
const DENIED = 'denied.test';
const PYPI = 'pypi.example.test';
const PACKAGE_TOKEN = randomBytes(6).toString('hex');

let net: TestInternet;
let k: TestKiln;

beforeAll(async () => {
  net = await startTestInternet(({ web, other }) => ({ [API]: web, [WILD]: web, 'wild.example.test': web, [PYPI]: web, [DENIED]: other, 'other.example.test': other }), [API, '*.wild.example.test', PYPI, DENIED], PACKAGE_TOKEN);
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 0 } }, python: null, shell: null, provided: null }, env: { KILN_EGRESS_DNS: net.dns } });
  const base = JSON.parse(readFileSync(new URL('../../../templates/nodejs.json', import.meta.url), 'utf8'));
  for (const [name, network] of [
    [EGRESS, { allow: { domains: [API, '*.wild.example.test', PYPI], cidrs: [`${net.web}/32`], ports: [80, 443, 7000] } }],
    [OUTBOUND, 'outbound'],
  ] as const) {
    const res = await k.call('POST', '/api/v1/templates', { ...base, name, network, pool: { ...base.pool, minIdle: 0 } });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
  }
}, 90_000);

afterAll(async () => {
  await k?.stop();
  net?.stop();
});

async function run(id: string, command: string, args: string[], extra: Record<string, unknown> = {}): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const res = await k.call('POST', `/api/v1/sessions/${id}/process/run`, { command, args, timeoutMs: 30_000, ...extra });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

/** curl's exit code and body (6: could not resolve; 7: could not connect; 35/56: reset in TLS/recv). */
async function curl(id: string, ...args: string[]): Promise<{ exitCode: number; stdout: string }> {
  const r = await run(id, 'curl', ['-sS', '-m', '10', ...args]);
  return { exitCode: r.exitCode, stdout: r.stdout };
}

/** Resolves a name in the sandbox (getaddrinfo through /etc/resolv.conf): the address or the error. */
async function resolve(id: string, name: string): Promise<string> {
  const r = await run(id, 'python3', ['-c', 'import socket,sys\ntry: print(socket.gethostbyname(sys.argv[1]))\nexcept OSError as e: print("error", e.errno)', name]);
  return r.stdout.trim();
}

/** Raw TCP from the sandbox: sends "ping", answers what came back or the error name. */
async function tcp(id: string, host: string, port: number): Promise<string> {
  const code = `
import errno, socket, sys
s = socket.socket(); s.settimeout(10)
try:
    s.connect((sys.argv[1], int(sys.argv[2]))); s.sendall(b'ping'); print(s.recv(100).decode() or 'closed')
except socket.timeout:
    print('timeout')
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))`;
  return (await run(id, 'python3', ['-c', code, host, String(port)])).stdout.trim();
}

const refusedAtConnect = (exitCode: number): boolean => [7, 35, 52, 56].includes(exitCode);

describe('egress policy', () => {
  it('lets through allowed names (HTTP, HTTPS, Node fetch, raw TCP, wildcards) and refuses the rest', async () => {
    await inSession(
      k,
      async (id) => {
        await run(id, 'sh', ['-c', 'cat > /workspace/ca.pem'], { stdin: net.caPem });
        // HTTP by Host, HTTPS by SNI (end to end: the sandbox checks the real server's certificate).
        const http = await curl(id, `http://${API}/`);
        expect(http.exitCode).toBe(0);
        expect(JSON.parse(http.stdout)).toMatchObject({ server: 'web', host: API });
        const https = await curl(id, '--cacert', '/workspace/ca.pem', `https://${API}/`);
        expect(https.exitCode).toBe(0);
        expect(JSON.parse(https.stdout)).toMatchObject({ server: 'web-tls', host: API });
        // Node 20's fetch, with no proxy settings at all.
        const node = await run(id, 'node', ['-e', `fetch('https://${API}/').then((r) => r.json()).then((b) => console.log(b.server))`], { env: { NODE_EXTRA_CA_CERTS: '/workspace/ca.pem' } });
        expect([node.stdout.trim(), node.stderr]).toEqual(['web-tls', '']);
        // A wildcard covers names below it, not the name itself.
        expect(JSON.parse((await curl(id, `http://${WILD}/`)).stdout)).toMatchObject({ host: WILD });
        expect(await resolve(id, 'wild.example.test')).toMatch(/^error/);
        expect((await curl(id, 'http://wild.example.test/')).exitCode).toBe(6);
        // DNS: only allowed names resolve, and only to Kiln's own addresses.
        expect(await resolve(id, API)).toMatch(/^127\.100\./);
        expect(await resolve(id, DENIED)).toMatch(/^error/);
        expect(await resolve(id, 'example.com')).toMatch(/^error/);
        // Raw TCP to an allowed name on an allowed port; other ports have no way out.
        expect(await tcp(id, API, 7000)).toBe('echo:ping');
        expect(await tcp(id, API, 7001)).toBe('ECONNREFUSED');
      },
      { template: EGRESS },
    );
  }, 120_000);

  it('refuses a disallowed Host or SNI on an allowed name, IP literals outside the CIDR rules, and the host and metadata', async () => {
    await inSession(
      k,
      async (id) => {
        // Host header naming another site on a connection to an allowed name.
        expect(refusedAtConnect((await curl(id, '-H', `Host: ${DENIED}`, `http://${API}/`)).exitCode)).toBe(true);
        // TLS whose SNI is not allowed, sent to an allowed name's address.
        const sni = await curl(id, '-k', '--connect-to', `${DENIED}:443:${API}:443`, `https://${DENIED}/`);
        expect(refusedAtConnect(sni.exitCode), JSON.stringify(sni)).toBe(true);
        // IP literals: the listed /32 is reachable, its neighbour is not, nor the host or metadata.
        expect(JSON.parse((await curl(id, `http://${net.web}/`)).stdout)).toMatchObject({ server: 'web' });
        expect(refusedAtConnect((await curl(id, `http://${net.other}/`)).exitCode)).toBe(true);
        expect(await tcp(id, net.other, 7000)).toBe('ECONNRESET');
        expect(refusedAtConnect((await curl(id, `http://${net.host}/`)).exitCode)).toBe(true);
        expect(refusedAtConnect((await curl(id, 'http://169.254.169.254/')).exitCode)).toBe(true);
        expect(refusedAtConnect((await curl(id, 'http://127.0.0.1/')).exitCode)).toBe(true);
        // IPv6 has no route at all.
        expect(await tcp(id, '::1', 80)).not.toBe('echo:ping');
        // The sandbox cannot undo it: it has no capability over its namespace.
        const undo = await run(id, 'ip', ['route', 'del', 'local', '0.0.0.0/0', 'table', 'local']);
        expect(undo.exitCode).not.toBe(0);

        const audit = await k.call('GET', `/api/v1/sessions/${id}/network/audit`);
        expect(audit.status, JSON.stringify(audit.body)).toBe(200);
        const records = audit.body.records as Array<Record<string, unknown>>;
        expect(records).toContainEqual(expect.objectContaining({ protocol: 'http', allowed: false, rule: 'default', domain: expect.stringContaining(API), detail: expect.stringContaining(`Host ${DENIED}`) }));
        expect(records).toContainEqual(expect.objectContaining({ protocol: 'tls', allowed: false, rule: 'default', detail: expect.stringContaining(`SNI ${DENIED}`) }));
        expect(records).toContainEqual(expect.objectContaining({ protocol: 'tcp', allowed: false, ip: net.other, port: 80, rule: 'private' }));
        expect(records).toContainEqual(expect.objectContaining({ allowed: false, ip: '169.254.169.254', rule: 'never' }));
        expect(records).toContainEqual(expect.objectContaining({ allowed: false, ip: net.host, rule: 'never' }));
        expect(records).toContainEqual(expect.objectContaining({ protocol: 'http', allowed: true, ip: net.web, port: 80, rule: `allow.cidrs:${net.web}/32`, bytesIn: expect.any(Number) }));
        expect(audit.body.refusedTotal).toBeGreaterThanOrEqual(6);
        // And in the metrics, summed over the template's executors.
        const metrics = await k.call('GET', '/metrics');
        const refused = new RegExp(`^kiln_egress_events_total\\{template="${EGRESS}",verdict="refused"\\} (\\d+)$`, 'm').exec(String(metrics.body));
        expect(Number(refused?.[1])).toBeGreaterThanOrEqual(audit.body.refusedTotal);
      },
      { template: EGRESS },
    );
  }, 120_000);

  it('changes a running session policy at once, only within the template, with audit records', async () => {
    await inSession(
      k,
      async (id) => {
        expect((await curl(id, `http://${API}/`)).exitCode).toBe(0);
        const before = await k.call('GET', `/api/v1/sessions/${id}/network`);
        expect(before.status).toBe(200);
        expect(before.body.policy).toEqual(before.body.template);
        const fake = await resolve(id, API);
        expect(fake).toMatch(/^127\.100\./);

        const narrowed = await k.call('PUT', `/api/v1/sessions/${id}/network`, { allow: { domains: ['*.wild.example.test'], cidrs: [`${net.web}/32`], ports: [80] } });
        expect(narrowed.status, JSON.stringify(narrowed.body)).toBe(200);
        expect(narrowed.body.policy.allow).toEqual({ all: false, domains: ['*.wild.example.test'], cidrs: [`${net.web}/32`], ports: [80] });
        // New connections follow at once: the name it resolved a moment ago no longer passes, nor its DNS.
        expect(refusedAtConnect((await curl(id, `http://${fake}/`)).exitCode)).toBe(true);
        expect(await resolve(id, API)).toMatch(/^error/);
        expect((await curl(id, `http://${API}/`)).exitCode).toBe(6);
        expect((await curl(id, `http://${WILD}/`)).exitCode).toBe(0);
        expect(refusedAtConnect((await curl(id, '-k', `https://${WILD}/`)).exitCode)).toBe(true);

        // Widening past the template is refused with a code; so is malformed input.
        for (const [body, code] of [
          [{ allow: { all: true } }, 'NetworkPolicyWidens'],
          [{ allow: { domains: ['example.com'] } }, 'NetworkPolicyWidens'],
          [{ allow: { ports: [22] } }, 'NetworkPolicyWidens'],
          [{ allow: { cidrs: [`${net.other}/32`] } }, 'NetworkPolicyWidens'],
          [{ allow: { domains: ['bad domain'] } }, 'InvalidRequest'],
          [{ allow: { cidrs: ['169.254.169.254/32'] } }, 'InvalidRequest'],
          [{ allow: { ports: [0] } }, 'InvalidRequest'],
          [{ allow: { domain: [API] } }, 'InvalidRequest'],
          ['"open"', 'InvalidRequest'],
        ] as const) {
          const res = await k.call('PUT', `/api/v1/sessions/${id}/network`, body);
          expect([JSON.stringify(body), res.status, res.body.error?.code]).toEqual([JSON.stringify(body), 400, code]);
        }
        const res = await k.call('PUT', `/api/v1/sessions/${id}/network`, '{"allow":');
        expect(res.status).toBe(400);
        // Widening back up to the template is allowed.
        expect((await k.call('PUT', `/api/v1/sessions/${id}/network`, '"none"')).status).toBe(200);
        expect((await curl(id, `http://${WILD}/`)).exitCode).not.toBe(0);
        expect((await k.call('PUT', `/api/v1/sessions/${id}/network`, { allow: { domains: [API], cidrs: [`${net.web}/32`] } })).status).toBe(200);
        expect((await curl(id, `http://${API}/`)).exitCode).toBe(0);

        const audit = (await k.call('GET', `/api/v1/sessions/${id}/network/audit`)).body;
        const records = audit.records as Array<Record<string, unknown>>;
        expect(records).toContainEqual(expect.objectContaining({ protocol: 'dns', domain: API, allowed: false, rule: 'default' }));
        expect(records).toContainEqual(expect.objectContaining({ protocol: 'tcp', domain: API, allowed: false, rule: 'default' }));
        expect(records).toContainEqual(expect.objectContaining({ protocol: 'tcp', domain: WILD, port: 443, allowed: false, rule: 'allow.ports' }));
        const after = (await k.call('GET', `/api/v1/sessions/${id}/network/audit?after=${records.at(-1)?.seq as number}`)).body;
        expect(after.records).toEqual([]);
      },
      { template: EGRESS },
    );
  }, 120_000);

  it('installs a wheel with pip from an allowed package index, in a virtual environment', async () => {
    await inSession(
      k,
      async (id) => {
        await run(id, 'sh', ['-c', 'cat > /workspace/ca.pem'], { stdin: net.caPem });
        const venv = await run(id, 'python3', ['-m', 'venv', '/workspace/venv']);
        expect(venv.exitCode, venv.stderr).toBe(0);
        const pip = await run(id, '/workspace/venv/bin/pip', ['install', '--disable-pip-version-check', '--no-cache-dir', '--cert', '/workspace/ca.pem', '--index-url', `https://${PYPI}/simple/`, 'kilnprobe']);
        expect(pip.exitCode, pip.stdout + pip.stderr).toBe(0);
        const probe = await run(id, '/workspace/venv/bin/python', ['-c', 'import kilnprobe; print(kilnprobe.TOKEN)']);
        expect(probe.stdout.trim()).toBe(PACKAGE_TOKEN);
      },
      { template: EGRESS },
    );
  }, 180_000);

  it('bounds the connections one sandbox holds open through the proxy', async () => {
    await inSession(
      k,
      async (id) => {
        const code = `
import socket, sys
socks = [socket.create_connection((sys.argv[1], 7000), timeout=10) for _ in range(300)]
ok = reset = 0
for s in socks:
    try:
        s.sendall(b'ping')
        if s.recv(100).startswith(b'echo:'):
            ok += 1
        else:
            reset += 1
    except OSError:
        reset += 1
print(ok, reset)`;
        const r = await run(id, 'python3', ['-c', code, API]);
        expect([r.stdout.trim(), r.stderr]).toEqual(['256 44', '']);
        const audit = (await k.call('GET', `/api/v1/sessions/${id}/network/audit`)).body.records as Array<Record<string, unknown>>;
        expect(audit.filter((x) => x.rule === 'limit')).toHaveLength(44);
      },
      { template: EGRESS },
    );
  }, 120_000);

  it('injects a secret only into plain HTTP toward its host; the sandbox never holds the value', async () => {
    const value = `sk-test-${randomBytes(16).toString('hex')}`;
    const sha = (s: string): string => createHash('sha256').update(s).digest('hex');
    const put = await k.call('PUT', '/api/v1/admin/tenants/default/secrets/api_token', { value, hosts: [API], header: 'Authorization', format: 'Bearer {value}' });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    const listed = await k.call('GET', '/api/v1/admin/tenants/default/secrets');
    expect(listed.body.secrets).toEqual([expect.objectContaining({ name: 'api_token', hosts: [API], header: 'Authorization', format: 'Bearer {value}' })]);
    // Sealed at rest: no API answer and no Redis key holds it in clear.
    for (const text of [JSON.stringify(put.body), JSON.stringify(listed.body), JSON.stringify(await k.redis.hgetall(`${k.prefix}:egress-secrets:default`))]) expect(text).not.toContain(value);
    for (const [body, code] of [
      [{ value: 'a\r\nX-Evil: 1', hosts: [API] }, 'InvalidRequest'],
      [{ value: 'v', hosts: [API], format: 'no placeholder' }, 'InvalidRequest'],
      [{ value: 'v', hosts: ['bad host'] }, 'InvalidRequest'],
      [{ value: 'v', hosts: [API], header: 'Bad Header' }, 'InvalidRequest'],
    ] as const) {
      const res = await k.call('PUT', '/api/v1/admin/tenants/default/secrets/bad', body);
      expect([JSON.stringify(body), res.status, res.body.error?.code]).toEqual([JSON.stringify(body), 400, code]);
    }

    await inSession(
      k,
      async (id) => {
        const unknown = await k.call('POST', `/api/v1/sessions/${id}/secrets`, { names: ['nope'] });
        expect([unknown.status, unknown.body.error?.code]).toEqual([404, 'SecretNotFound']);
        const bound = await k.call('POST', `/api/v1/sessions/${id}/secrets`, { names: ['api_token'] });
        expect(bound.status, JSON.stringify(bound.body)).toBe(200);
        const placeholder = bound.body.env.KILN_SECRET_API_TOKEN as string;
        expect(placeholder).toMatch(/^kiln-secret-api_token-[0-9a-f]{32}$/);
        await run(id, 'sh', ['-c', 'cat > /workspace/ca.pem'], { stdin: net.caPem });
        // The server answers hashes of what it got, so the value never comes back into the sandbox.
        const get = async (url: string, ...extra: string[]): Promise<Record<string, string>> => {
          const r = await run(id, 'sh', ['-c', `curl -sS -m 10 --cacert /workspace/ca.pem -H "X-Token: $KILN_SECRET_API_TOKEN" ${extra.join(' ')} ${url}`]);
          expect(r.stderr).toBe('');
          return JSON.parse(r.stdout).headers;
        };
        // Toward its host over plain HTTP: the header set and the placeholder replaced.
        const toHost = await get(`http://${API}/hashed`, '-H "Authorization: Basic mine"');
        expect([toHost.Authorization, toHost['X-Token']]).toEqual([sha(`Bearer ${value}`), sha(value)]);
        // Toward another allowed host, and over HTTPS (not intercepted): the placeholder only.
        for (const url of [`http://${WILD}/hashed`, `https://${API}/hashed`]) {
          const h = await get(url);
          expect([url, h['X-Token'], h.Authorization]).toEqual([url, sha(placeholder), undefined]);
        }
        // Nothing in the sandbox holds the value: every process's environment and command line, the workspace and /tmp.
        const scan = await run(id, 'sh', ['-c', 'for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do cat "$f" 2>/dev/null; echo; done; find /workspace /tmp -type f -exec cat {} + 2>/dev/null; env']);
        expect(scan.stdout).toContain(`KILN_SECRET_API_TOKEN=${placeholder}`);
        expect(scan.stdout).not.toContain(value);
        const audit = (await k.call('GET', `/api/v1/sessions/${id}/network/audit`)).body.records as Array<Record<string, unknown>>;
        expect(audit.filter((r) => r.detail === 'secrets injected').map((r) => r.domain)).toEqual([API]);
      },
      { template: EGRESS },
    );
    expect((await k.call('DELETE', '/api/v1/admin/tenants/default/secrets/api_token')).status).toBe(204);
    expect((await k.call('DELETE', '/api/v1/admin/tenants/default/secrets/api_token')).status).toBe(404);
  }, 120_000);

  it('answers 409 NetworkPolicyUnsupported for a session without an egress policy, 404 for an unknown one', async () => {
    await inSession(
      k,
      async (id) => {
        const res = await k.call('PUT', `/api/v1/sessions/${id}/network`, '"none"');
        expect([res.status, res.body.error?.code]).toEqual([409, 'NetworkPolicyUnsupported']);
      },
      { template: OUTBOUND },
    );
    const res = await k.call('GET', '/api/v1/sessions/ses_nope/network/audit');
    expect([res.status, res.body.error?.code]).toEqual([404, 'SessionNotFound']);
  }, 60_000);

  it('refuses malformed egress templates with a 400 and a code', async () => {
    const base = JSON.parse(readFileSync(new URL('../../../templates/nodejs.json', import.meta.url), 'utf8'));
    for (const network of [{ allow: { domains: ['*'] } }, { allow: { cidrs: ['10.0.0.1/8'] } }, { allow: { ports: Array.from({ length: 33 }, (_, i) => i + 1) } }, { deny: { ports: ['80'] } }, { allow: {}, extra: 1 }]) {
      const res = await k.call('POST', '/api/v1/templates', { ...base, name: `bad-${tag}`, network });
      expect([JSON.stringify(network), res.status, res.body.error?.code]).toEqual([JSON.stringify(network), 400, 'InvalidRequest']);
    }
  });
});
