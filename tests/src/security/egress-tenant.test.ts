import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { startTestInternet, type TestInternet } from './egress-internet.js';

/**
 * Egress settings that sessions and functions bring themselves, and secrets tenants manage:
 * a policy at session create (narrowing; widening only within the tenant's egress grant), a
 * function's policy on every sandbox that runs it (and never on another function's), and
 * `/api/v1/secrets` per tenant (values never answered, never in the sandbox, only toward their
 * hosts, unknown to another tenant). Against the test internet of egress-internet.ts.
 */

const tag = randomBytes(3).toString('hex');
const EGRESS = `egress-t-${tag}`;
const API = 'api.example.test';
const WILD = 'x.wild.example.test';
const OTHER = 'other.example.test';
const ALPHA = `egress-alpha-${randomBytes(12).toString('hex')}`;
const BETA = `egress-beta-${randomBytes(12).toString('hex')}`;
const ADMIN = `egress-admin-${randomBytes(12).toString('hex')}`;
const as = (key: string) => ({ authorization: `Bearer ${key}` });
const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

let net: TestInternet;
let k: TestKiln;

beforeAll(async () => {
  net = await startTestInternet(({ web, other }) => ({ [API]: web, [WILD]: web, [OTHER]: other }), [API]);
  k = await startTestKiln({
    templates: { nodejs: { pool: { minIdle: 0 } }, python: null, shell: null, provided: null },
    env: { KILN_EGRESS_DNS: net.dns, KILN_API_KEYS: `alpha:${ALPHA},beta:${BETA}`, KILN_ADMIN_API_KEYS: ADMIN },
  });
  const base = JSON.parse(readFileSync(new URL('../../../templates/nodejs.json', import.meta.url), 'utf8'));
  const res = await k.call('POST', '/api/v1/templates', { ...base, name: EGRESS, network: { allow: { domains: [API, '*.wild.example.test'], cidrs: [`${net.web}/32`], ports: [80, 443] } }, pool: { ...base.pool, minIdle: 0 } }, as(ADMIN));
  expect(res.status, JSON.stringify(res.body)).toBe(201);
}, 90_000);

afterAll(async () => {
  await k?.stop();
  net?.stop();
});

async function session(key: string, body: Record<string, unknown>): Promise<{ status: number; body: any }> {
  return k.call('POST', '/api/v1/sessions', { template: EGRESS, ...body }, as(key));
}

async function withSession<T>(key: string, body: Record<string, unknown>, fn: (id: string) => Promise<T>): Promise<T> {
  const res = await session(key, body);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  try {
    return await fn(res.body.id as string);
  } finally {
    await k.call('DELETE', `/api/v1/sessions/${res.body.id}`, undefined, as(key));
  }
}

async function run(key: string, id: string, script: string, extra: Record<string, unknown> = {}): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const res = await k.call('POST', `/api/v1/sessions/${id}/process/run`, { command: 'sh', args: ['-c', script], timeoutMs: 30_000, ...extra }, as(key));
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

/** curl's exit code and body; 0 with JSON from the test server when it got through. */
async function curl(key: string, id: string, url: string): Promise<{ exitCode: number; stdout: string }> {
  const r = await run(key, id, `curl -sS -m 10 ${url}`);
  return { exitCode: r.exitCode, stdout: r.stdout };
}


describe('session policy at create', () => {
  it('narrows the template at once; a template without an egress policy takes none (409)', async () => {
    await withSession(ALPHA, { network: { allow: { domains: [API], cidrs: [`${net.web}/32`], ports: [80] } } }, async (id) => {
      expect(JSON.parse((await curl(ALPHA, id, `http://${API}/`)).stdout)).toMatchObject({ host: API });
      // The template allows the wildcard; this session does not, from its first connection.
      expect((await curl(ALPHA, id, `http://${WILD}/`)).exitCode).toBe(6);
      const got = await k.call('GET', `/api/v1/sessions/${id}/network`, undefined, as(ALPHA));
      expect(got.body.policy.allow.domains).toEqual([API]);
    });
    const none = await k.call('POST', '/api/v1/sessions', { template: 'nodejs', network: 'none' }, as(ALPHA));
    expect([none.status, none.body.error?.code]).toEqual([409, 'NetworkPolicyUnsupported']);
    const bad = await session(ALPHA, { network: { allow: { domains: ['*'] } } });
    expect([bad.status, bad.body.error?.code]).toEqual([400, 'InvalidRequest']);
  }, 120_000);

  it('widens only within the tenant grant an administrator gave, for that tenant only, until withdrawn', async () => {
    const wide = { allow: { domains: [API, OTHER], cidrs: [`${net.web}/32`, `${net.other}/32`], ports: [80] } };
    const refused = await session(ALPHA, { network: wide });
    expect([refused.status, refused.body.error?.code]).toEqual([400, 'NetworkPolicyWidens']);
    // A tenant cannot grant itself: the grant routes are the administrator's.
    const self = await k.call('PUT', '/api/v1/admin/tenants/alpha/egress-grant', { allow: { domains: [OTHER] } }, as(ALPHA));
    expect(self.status).toBe(403);
    const grant = await k.call('PUT', '/api/v1/admin/tenants/alpha/egress-grant', { allow: { domains: [OTHER], cidrs: [`${net.other}/32`], ports: [80, 7000] } }, as(ADMIN));
    expect(grant.status, JSON.stringify(grant.body)).toBe(200);
    try {
      await withSession(ALPHA, { network: wide }, async (id) => {
        expect(JSON.parse((await curl(ALPHA, id, `http://${OTHER}/`)).stdout)).toMatchObject({ server: 'other', host: OTHER });
        expect((await curl(ALPHA, id, `http://${WILD}/`)).exitCode).toBe(6);
        // Ports stay the template's: the grant's 7000 opens nothing.
        const port = await k.call('PUT', `/api/v1/sessions/${id}/network`, { allow: { domains: [OTHER], cidrs: [`${net.other}/32`], ports: [7000] } }, as(ALPHA));
        expect([port.status, port.body.error?.code]).toEqual([400, 'NetworkPolicyWidens']);
        // Withdrawn: the next change is judged without it.
        expect((await k.call('DELETE', '/api/v1/admin/tenants/alpha/egress-grant', undefined, as(ADMIN))).status).toBe(204);
        const again = await k.call('PUT', `/api/v1/sessions/${id}/network`, wide, as(ALPHA));
        expect([again.status, again.body.error?.code]).toEqual([400, 'NetworkPolicyWidens']);
        const back = await k.call('PUT', `/api/v1/sessions/${id}/network`, { allow: { domains: [API], ports: [80] } }, as(ALPHA));
        expect(back.status, JSON.stringify(back.body)).toBe(200);
        expect(back.body.template.allow.domains).toEqual([API, '*.wild.example.test']);
        expect((await curl(ALPHA, id, `http://${OTHER}/`)).exitCode).toBe(6);
      });
      // Beta never had a grant.
      const beta = await session(BETA, { network: wide });
      expect([beta.status, beta.body.error?.code]).toEqual([400, 'NetworkPolicyWidens']);
    } finally {
      await k.call('DELETE', '/api/v1/admin/tenants/alpha/egress-grant', undefined, as(ADMIN));
    }
  }, 120_000);
});

describe('function policy', () => {
  const handler = `exports.handler = async (e) => {
    const out = {};
    for (const u of e.urls) { try { const r = await fetch(u); out[u] = (await r.json()).headers; } catch (err) { out[u] = 'refused'; } }
    return { out, env: process.env };
  };`;
  const create = (name: string, extra: Record<string, unknown>, key = ALPHA) =>
    k.call('POST', '/api/v1/functions', { name, runtime: 'nodejs20.x', template: EGRESS, timeout: 30, code: { source: handler }, ...extra }, as(key));
  const invoke = async (name: string, urls: string[], key = ALPHA): Promise<{ out: Record<string, unknown>; env: Record<string, string> }> => {
    const res = await k.call('POST', `/api/v1/functions/${name}/invocations`, { urls }, as(key));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.status, JSON.stringify(res.body)).toBe('succeeded');
    return res.body.result;
  };

  it("puts a function's own policy on every sandbox that runs it, never on another function's", async () => {
    const narrowFn = `narrow-${tag}`;
    const openFn = `open-${tag}`;
    expect((await create(narrowFn, { network: { allow: { domains: [API], cidrs: [`${net.web}/32`], ports: [80] } } })).status).toBe(201);
    expect((await create(openFn, {})).status).toBe(201);
    try {
      const urls = [`http://${API}/`, `http://${WILD}/`];
      // Alternating, so that sandboxes are reused: each keeps its function's policy.
      for (let i = 0; i < 3; i++) {
        const n = await invoke(narrowFn, urls);
        expect([typeof n.out[urls[0] as string], n.out[urls[1] as string]]).toEqual(['object', 'refused']);
        const o = await invoke(openFn, urls);
        expect([typeof o.out[urls[0] as string], typeof o.out[urls[1] as string]]).toEqual(['object', 'object']);
      }
      // Changing the policy reaches the next invocation.
      const upd = await k.call('PUT', `/api/v1/functions/${narrowFn}`, { network: { allow: { domains: [WILD], cidrs: [`${net.web}/32`], ports: [80] } } }, as(ALPHA));
      expect(upd.status, JSON.stringify(upd.body)).toBe(200);
      const after = await invoke(narrowFn, urls);
      expect([after.out[urls[0] as string], typeof after.out[urls[1] as string]]).toEqual(['refused', 'object']);
      // Widening without a grant, and a policy on a template without one, are refused at configuration.
      const wider = await create(`wider-${tag}`, { network: { allow: { domains: [OTHER], cidrs: [`${net.other}/32`] } } });
      expect([wider.status, wider.body.error?.code]).toEqual([400, 'NetworkPolicyWidens']);
      const plain = await k.call('POST', '/api/v1/functions', { name: `plain-${tag}`, runtime: 'nodejs20.x', code: { source: handler }, network: 'none' }, as(ALPHA));
      expect([plain.status, plain.body.error?.code]).toEqual([409, 'NetworkPolicyUnsupported']);
    } finally {
      for (const n of [narrowFn, openFn]) await k.call('DELETE', `/api/v1/functions/${n}`, undefined, as(ALPHA));
    }
  }, 180_000);
});

describe('tenant secrets', () => {
  it('stores sealed, lists names only, injects only toward its hosts, never enters the sandbox, and is unknown to another tenant', async () => {
    const value = `sk-tenant-${randomBytes(16).toString('hex')}`;
    const put = await k.call('PUT', '/api/v1/secrets/api_key', { value, hosts: [API], header: 'X-Api-Key', format: '{value}' }, as(ALPHA));
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    const fnName = `secret-fn-${tag}`;
    try {
      const listed = await k.call('GET', '/api/v1/secrets', undefined, as(ALPHA));
      expect(listed.body.secrets).toEqual([expect.objectContaining({ name: 'api_key', hosts: [API], header: 'X-Api-Key', https: false })]);
      // Never in an answer or in clear in Redis; a rejected write does not echo it either.
      const badWrite = await k.call('PUT', '/api/v1/secrets/api_key', { value: `${value}\r\nX-Evil: 1`, hosts: [API] }, as(ALPHA));
      expect([badWrite.status, badWrite.body.error?.code]).toEqual([400, 'InvalidRequest']);
      for (const text of [JSON.stringify(put.body), JSON.stringify(listed.body), JSON.stringify(badWrite.body), JSON.stringify(await k.redis.hgetall(`${k.prefix}:egress-secrets:alpha`))]) expect(text).not.toContain(value);

      // Another tenant: not listed, not deletable, not referable by a session or a function.
      expect((await k.call('GET', '/api/v1/secrets', undefined, as(BETA))).body.secrets).toEqual([]);
      expect((await k.call('DELETE', '/api/v1/secrets/api_key', undefined, as(BETA))).status).toBe(404);
      const betaSession = await session(BETA, { secrets: ['api_key'] });
      expect([betaSession.status, betaSession.body.error?.code]).toEqual([404, 'SecretNotFound']);
      const betaFn = await k.call('POST', '/api/v1/functions', { name: `steal-${tag}`, runtime: 'nodejs20.x', template: EGRESS, code: { source: 'exports.handler = async () => 1' }, secrets: ['api_key'] }, as(BETA));
      expect([betaFn.status, betaFn.body.error?.code]).toEqual([404, 'SecretNotFound']);
      // An administrator's tenant query does not make a tenant key reach another's store.
      expect((await k.call('GET', '/api/v1/secrets?tenant=alpha', undefined, as(BETA))).body.secrets).toEqual([]);

      await withSession(ALPHA, { secrets: ['api_key'] }, async (id) => {
        const toHost = await run(ALPHA, id, `curl -sS -m 10 -H "X-Token: $KILN_SECRET_API_KEY" http://${API}/hashed`);
        const h = JSON.parse(toHost.stdout).headers as Record<string, string>;
        expect([h['X-Api-Key'], h['X-Token']]).toEqual([sha(value), sha(value)]);
        // A host the secret is not bound to gets the placeholder only, and no header.
        const other = JSON.parse((await run(ALPHA, id, `curl -sS -m 10 -H "X-Token: $KILN_SECRET_API_KEY" http://${WILD}/hashed`)).stdout).headers as Record<string, string>;
        expect(other['X-Api-Key']).toBeUndefined();
        expect(other['X-Token']).not.toBe(sha(value));
        // The sandbox looks everywhere it can: environments, command lines, its files.
        const scan = await run(ALPHA, id, 'env; for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do cat "$f" 2>/dev/null; echo; done; find / -xdev -type f -readable -size -1M 2>/dev/null | grep -v "^/proc\\|^/sys\\|^/usr" | xargs cat 2>/dev/null', { timeoutMs: 60_000 });
        expect(scan.stdout).toMatch(/KILN_SECRET_API_KEY=kiln-secret-api_key-/);
        expect(scan.stdout).not.toContain(value);
        const audit = await k.call('GET', `/api/v1/sessions/${id}/network/audit`, undefined, as(ALPHA));
        expect(JSON.stringify(audit.body)).not.toContain(value);
        expect((audit.body.records as Array<{ detail: string; domain: string }>).filter((r) => r.detail === 'secrets injected').map((r) => r.domain)).toEqual([API]);
      });

      // A function naming the secret: its handler's environment holds the placeholder only.
      const made = await k.call('POST', '/api/v1/functions', { name: fnName, runtime: 'nodejs20.x', template: EGRESS, timeout: 30, secrets: ['api_key'], code: { source: `exports.handler = async () => { const r = await fetch('http://${API}/hashed', { headers: { 'x-token': process.env.KILN_SECRET_API_KEY } }); return { headers: (await r.json()).headers, env: JSON.stringify(process.env) }; };` } }, as(ALPHA));
      expect(made.status, JSON.stringify(made.body)).toBe(201);
      const inv = await k.call('POST', `/api/v1/functions/${fnName}/invocations`, {}, as(ALPHA));
      expect(inv.body.status, JSON.stringify(inv.body)).toBe('succeeded');
      expect(inv.body.result.headers['X-Api-Key']).toBe(sha(value));
      expect(inv.body.result.env).toContain('kiln-secret-api_key-');
      expect(JSON.stringify(inv.body)).not.toContain(value);

      // Deleted: a new session cannot name it any more.
      expect((await k.call('DELETE', '/api/v1/secrets/api_key', undefined, as(ALPHA))).status).toBe(204);
      const gone = await session(ALPHA, { secrets: ['api_key'] });
      expect([gone.status, gone.body.error?.code]).toEqual([404, 'SecretNotFound']);
    } finally {
      await k.call('DELETE', `/api/v1/functions/${fnName}`, undefined, as(ALPHA));
      await k.call('DELETE', '/api/v1/secrets/api_key', undefined, as(ALPHA));
    }
  }, 180_000);
});
