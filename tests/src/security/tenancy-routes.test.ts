import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

/**
 * Every route of the OpenAPI document, called by tenant beta with tenant alpha's ids. A route
 * must be classified below or this test fails, so a new route cannot be added without deciding
 * (and checking here) what another tenant gets from it. Afterwards alpha's session, files,
 * process and function are as they were.
 */
const ALPHA = 'routes-alpha-key-0123456789abcdef';
const BETA = 'routes-beta-key-0123456789abcdef0';
const ADMIN = 'routes-admin-key-0123456789abcdef';

type Kind =
  /** alpha's resource: beta gets 404, as for an id that does not exist */
  | 'owned'
  /** the deployment's (tenants, template changes): beta's key lacks the admin scope, 403 */
  | 'admin'
  /** shared, readable by any tenant: 200 */
  | 'shared'
  /** beta's own view or a new resource of beta's: 2xx, never showing alpha's ids */
  | 'own'
  /** a keyless signed-link route: without a link alpha made, 403 FileLinkRefused */
  | 'link';
interface Case {
  kind: Kind;
  query?: string;
  body?: unknown;
  /** A raw body with its content type (uploads). */
  raw?: { type: string; data: string };
}

const CODE = 'exports.handler = async () => "pwned"';
const ROUTES: Record<string, Case> = {
  'POST /api/v1/executions': { kind: 'own', body: { code: 'exports.handler = async () => 1', language: 'nodejs', wait: false } },
  'GET /api/v1/executions': { kind: 'own' },
  'GET /api/v1/executions/{id}': { kind: 'owned' },
  'POST /api/v1/functions': { kind: 'own', body: { name: 'beta-fn', runtime: 'nodejs20.x', code: { source: 'exports.handler = async () => 2' } } },
  'GET /api/v1/functions': { kind: 'own' },
  'GET /api/v1/functions/{name}': { kind: 'owned' },
  'PUT /api/v1/functions/{name}': { kind: 'owned', body: { code: { source: CODE } } },
  'DELETE /api/v1/functions/{name}': { kind: 'owned' },
  'POST /api/v1/functions/{name}/versions': { kind: 'owned', body: {} },
  'GET /api/v1/functions/{name}/versions': { kind: 'owned' },
  'POST /api/v1/functions/{name}/invocations': { kind: 'owned', body: {} },
  'GET /api/v1/functions/{name}/dead-letters': { kind: 'owned' },
  'POST /api/v1/functions/{name}/dead-letters/{id}/replay': { kind: 'owned' },
  'POST /api/v1/functions/{name}/aliases': { kind: 'owned', body: { name: 'planted', functionVersion: '$LATEST' } },
  'GET /api/v1/functions/{name}/aliases': { kind: 'owned' },
  'GET /api/v1/functions/{name}/aliases/{alias}': { kind: 'owned' },
  'PUT /api/v1/functions/{name}/aliases/{alias}': { kind: 'owned', body: { functionVersion: '$LATEST', description: 'pwned' } },
  'DELETE /api/v1/functions/{name}/aliases/{alias}': { kind: 'owned' },
  'GET /api/v1/templates': { kind: 'shared' },
  'POST /api/v1/templates': { kind: 'admin', body: { name: 'beta-template', image: 'x', runtimes: ['nodejs20.x'] } },
  'GET /api/v1/templates/{name}': { kind: 'shared' },
  'PUT /api/v1/templates/{name}': { kind: 'admin', body: { network: 'outbound' } },
  'DELETE /api/v1/templates/{name}': { kind: 'admin' },
  'GET /api/v1/admin/tenants': { kind: 'admin' },
  'POST /api/v1/admin/tenants': { kind: 'admin', body: { id: 'beta-made' } },
  'GET /api/v1/admin/tenants/{id}': { kind: 'admin' },
  'PATCH /api/v1/admin/tenants/{id}': { kind: 'admin', body: { quotas: {} } },
  'DELETE /api/v1/admin/tenants/{id}': { kind: 'admin' },
  'GET /api/v1/admin/tenants/{id}/secrets': { kind: 'admin' },
  'PUT /api/v1/admin/tenants/{id}/secrets/{name}': { kind: 'admin', body: { value: 'pwned', hosts: ['example.com'] } },
  'DELETE /api/v1/admin/tenants/{id}/secrets/{name}': { kind: 'admin' },
  'GET /api/v1/admin/tenants/{id}/egress-grant': { kind: 'admin' },
  'PUT /api/v1/admin/tenants/{id}/egress-grant': { kind: 'admin', body: 'all' },
  'DELETE /api/v1/admin/tenants/{id}/egress-grant': { kind: 'admin' },
  // A tenant's own secrets: the path names alpha's secret, but the name space is the key's tenant,
  // so beta writes and deletes a secret of its own by that name; alpha's stays (checked below).
  'GET /api/v1/secrets': { kind: 'own' },
  'PUT /api/v1/secrets/{name}': { kind: 'own', body: { value: 'beta-value', hosts: ['beta.example.com'] } },
  'DELETE /api/v1/secrets/{name}': { kind: 'own' },
  'GET /api/v1/admin/tenants/{id}/keys': { kind: 'admin' },
  'POST /api/v1/admin/tenants/{id}/keys': { kind: 'admin', body: {} },
  'DELETE /api/v1/admin/tenants/{id}/keys/{keyId}': { kind: 'admin' },
  'POST /api/v1/sessions': { kind: 'own', body: { template: 'nodejs', timeoutMs: 60_000 } },
  'GET /api/v1/sessions': { kind: 'own' },
  'GET /api/v1/sessions/{id}': { kind: 'owned' },
  'DELETE /api/v1/sessions/{id}': { kind: 'owned' },
  'POST /api/v1/sessions/{id}/keepalive': { kind: 'owned', body: { timeoutMs: 3_600_000 } },
  'POST /api/v1/sessions/{id}/process/run': { kind: 'owned', body: { command: 'touch', args: ['/workspace/pwned-run'] } },
  'POST /api/v1/sessions/{id}/process/stream': { kind: 'owned', body: { command: 'touch', args: ['/workspace/pwned-stream'] } },
  'POST /api/v1/sessions/{id}/processes': { kind: 'owned', body: { command: 'touch', args: ['/workspace/pwned-start'] } },
  'GET /api/v1/sessions/{id}/processes': { kind: 'owned' },
  'GET /api/v1/sessions/{id}/network': { kind: 'owned' },
  'PUT /api/v1/sessions/{id}/network': { kind: 'owned', body: 'all' },
  'GET /api/v1/sessions/{id}/network/audit': { kind: 'owned' },
  'POST /api/v1/sessions/{id}/secrets': { kind: 'owned', body: { names: ['alpha_secret'] } },
  'POST /api/v1/sessions/{id}/processes/{pid}/signal': { kind: 'owned', body: { signal: 'SIGKILL' } },
  'POST /api/v1/sessions/{id}/execute': { kind: 'owned', body: { code: CODE } },
  'GET /api/v1/sessions/{id}/files': { kind: 'owned', query: 'path=secret.txt' },
  'PUT /api/v1/sessions/{id}/files': { kind: 'owned', query: 'path=secret.txt', raw: { type: 'application/octet-stream', data: 'overwritten' } },
  'DELETE /api/v1/sessions/{id}/files': { kind: 'owned', query: 'path=secret.txt' },
  'GET /api/v1/sessions/{id}/files/list': { kind: 'owned', query: 'path=.' },
  'GET /api/v1/sessions/{id}/files/stat': { kind: 'owned', query: 'path=secret.txt' },
  'POST /api/v1/sessions/{id}/files/mkdir': { kind: 'owned', body: { path: 'pwned-dir' } },
  'POST /api/v1/sessions/{id}/files/rename': { kind: 'owned', body: { from: 'secret.txt', to: 'moved.txt' } },
  'GET /api/v1/sessions/{id}/files/tar': { kind: 'owned', query: 'path=.' },
  'PUT /api/v1/sessions/{id}/files/tar': { kind: 'owned', query: 'path=.', raw: { type: 'application/x-tar', data: '' } },
  'POST /api/v1/sessions/{id}/files/url': { kind: 'owned', body: { path: 'secret.txt', method: 'GET' } },
  'GET /api/v1/file-links/{token}': { kind: 'link' },
  'PUT /api/v1/file-links/{token}': { kind: 'link', raw: { type: 'application/octet-stream', data: 'pwned' } },
  'POST /api/v1/sessions/{id}/processes/{process}/stdin': { kind: 'owned', body: { data: 'pwned\n', close: true } },
  'GET /api/v1/sessions/{id}/processes/{process}/stream': { kind: 'owned' },
  'POST /api/v1/sessions/{id}/contexts': { kind: 'owned', body: { language: 'javascript' } },
  'GET /api/v1/sessions/{id}/contexts': { kind: 'owned' },
  'GET /api/v1/sessions/{id}/contexts/{ctx}': { kind: 'owned' },
  'DELETE /api/v1/sessions/{id}/contexts/{ctx}': { kind: 'owned' },
  'POST /api/v1/sessions/{id}/contexts/{ctx}/restart': { kind: 'owned' },
  'POST /api/v1/sessions/{id}/contexts/{ctx}/interrupt': { kind: 'owned' },
  'POST /api/v1/sessions/{id}/pause': { kind: 'owned' },
  'POST /api/v1/sessions/{id}/resume': { kind: 'owned' },
  'POST /api/v1/sessions/{id}/hibernate': { kind: 'owned' },
  'GET /api/v1/sessions/{id}/usage': { kind: 'owned' },
  'POST /api/v1/sessions/{id}/snapshots': { kind: 'owned', body: { name: 'pwned' } },
  'POST /api/v1/sessions/{id}/fork': { kind: 'owned', body: { count: 1 } },
  'GET /api/v1/snapshots': { kind: 'own' },
  'POST /api/v1/volumes': { kind: 'own', body: { name: 'beta-vol', sizeMB: 1 } },
  'GET /api/v1/volumes': { kind: 'own' },
  'GET /api/v1/volumes/{name}': { kind: 'owned' },
  'DELETE /api/v1/volumes/{name}': { kind: 'owned' },
  'POST /api/v1/sessions/{id}/volumes/{name}/sync': { kind: 'owned' },
  'GET /api/v1/snapshots/{id}': { kind: 'owned' },
  'DELETE /api/v1/snapshots/{id}': { kind: 'owned' },
  'POST /api/v1/sessions/{id}/code': { kind: 'owned', body: { code: 'require("fs").writeFileSync("/workspace/pwned-code", "")' , language: 'javascript' } },
  'GET /api/v1/health': { kind: 'shared' },
  'GET /api/v1/sessions/{id}/metrics': { kind: 'owned' },
  'GET /api/v1/functions/{name}/metrics': { kind: 'owned' },
  'GET /api/v1/pools': { kind: 'shared' },
  'POST /api/v1/sessions/{id}/pty-ticket': { kind: 'owned' },
  // E2B's control API (api/e2b/): a sandbox is a session.
  'POST /e2b/sandboxes': { kind: 'own', body: { templateID: 'nodejs', timeout: 60 } },
  'POST /e2b/v2/sandboxes': { kind: 'own', body: { templateID: 'nodejs', timeout: 60 } },
  'GET /e2b/sandboxes': { kind: 'own' },
  'GET /e2b/v2/sandboxes': { kind: 'own' },
  'GET /e2b/sandboxes/{sandboxID}': { kind: 'owned' },
  'DELETE /e2b/sandboxes/{sandboxID}': { kind: 'owned' },
  'POST /e2b/sandboxes/{sandboxID}/timeout': { kind: 'owned', body: { timeout: 1 } },
  'POST /e2b/sandboxes/{sandboxID}/refreshes': { kind: 'owned', body: { duration: 3600 } },
  'POST /e2b/v2/sandboxes/{sandboxID}/connect': { kind: 'owned', body: { timeout: 3600 } },
  'POST /e2b/sandboxes/{sandboxID}/pause': { kind: 'owned' },
};

let k: TestKiln;
const alpha = { authorization: `Bearer ${ALPHA}` };
const beta = { authorization: `Bearer ${BETA}` };
const admin = { authorization: `Bearer ${ADMIN}` };
const ids = { snapshot: '', session: '', fn: 'alpha-only-fn', alias: 'alpha-only-alias', execution: '', pid: 0, tenant: 'alpha', keyId: 'env-000000000000', template: 'nodejs', ctx: '' };

beforeAll(async () => {
  k = await startTestKiln({
    templates: { nodejs: { pool: { minIdle: 0 } }, python: null, shell: null, provided: null },
    env: { KILN_API_KEYS: `alpha:${ALPHA},beta:${BETA}`, KILN_ADMIN_API_KEYS: ADMIN },
  });
  const s = await k.call('POST', '/api/v1/sessions', { template: 'nodejs', timeoutMs: 120_000 }, alpha);
  expect(s.status, JSON.stringify(s.body)).toBe(201);
  ids.session = s.body.id as string;
  expect((await fetch(`${k.url}/api/v1/sessions/${ids.session}/files?path=secret.txt`, { method: 'PUT', headers: { ...alpha, 'content-type': 'application/octet-stream' }, body: 'alpha secret' })).status).toBe(200);
  const p = await k.call('POST', `/api/v1/sessions/${ids.session}/processes`, { command: 'sleep', args: ['600'] }, alpha);
  expect(p.status, JSON.stringify(p.body)).toBe(201);
  ids.pid = p.body.pid as number;
  const ctx = await k.call('POST', `/api/v1/sessions/${ids.session}/contexts`, { language: 'javascript' }, alpha);
  expect(ctx.status, JSON.stringify(ctx.body)).toBe(201);
  ids.ctx = ctx.body.id as string;
  const snap = await k.call('POST', `/api/v1/sessions/${ids.session}/snapshots`, { name: 'alpha-snap' }, alpha);
  expect(snap.status, JSON.stringify(snap.body)).toBe(201);
  ids.snapshot = snap.body.id as string;
  const f = await k.call('POST', '/api/v1/functions', { name: ids.fn, runtime: 'nodejs20.x', code: { source: 'exports.handler = async () => "alpha"' } }, alpha);
  expect(f.status, JSON.stringify(f.body)).toBe(201);
  const al = await k.call('POST', `/api/v1/functions/${ids.fn}/aliases`, { name: ids.alias, functionVersion: '$LATEST', description: 'alpha alias' }, alpha);
  expect(al.status, JSON.stringify(al.body)).toBe(201);
  const e = await k.call('POST', '/api/v1/executions', { code: 'exports.handler = async () => "alpha-exec"', language: 'nodejs' }, alpha);
  expect(e.status, JSON.stringify(e.body)).toBe(200);
  ids.execution = e.body.id as string;
  const vol = await k.call('POST', '/api/v1/volumes', { name: 'alpha-vol', sizeMB: 1 }, alpha);
  expect(vol.status, JSON.stringify(vol.body)).toBe(201);
  const sec = await k.call('PUT', '/api/v1/secrets/alpha_secret', { value: 'alpha-secret-value', hosts: ['alpha.example.com'] }, alpha);
  expect(sec.status, JSON.stringify(sec.body)).toBe(200);
});
afterAll(async () => {
  await k?.stop();
});

function pathFor(template: string): string {
  return template
    .replace('/sessions/{id}', `/sessions/${ids.session}`)
    .replace('/snapshots/{id}', `/snapshots/${ids.snapshot}`)
    .replace('/volumes/{name}', '/volumes/alpha-vol')
    .replace('/executions/{id}', `/executions/${ids.execution}`)
    .replace('/functions/{name}', `/functions/${ids.fn}`)
    .replace('/dead-letters/{id}', '/dead-letters/dl-0')
    .replace('/aliases/{alias}', `/aliases/${ids.alias}`)
    .replace('/processes/{pid}', `/processes/${ids.pid}`)
    .replace('/processes/{process}', `/processes/${ids.pid}`)
    .replace('/sandboxes/{sandboxID}', `/sandboxes/${ids.session}`)
    .replace('/contexts/{ctx}', `/contexts/${ids.ctx}`)
    .replace('/templates/{name}', `/templates/${ids.template}`)
    .replace('/tenants/{id}', `/tenants/${ids.tenant}`)
    .replace('/keys/{keyId}', `/keys/${ids.keyId}`)
    .replace(/^\/api\/v1\/secrets\/\{name\}$/, '/api/v1/secrets/alpha_secret');
}

describe('every route, as another tenant', () => {
  it('is classified here, and gives beta nothing of alpha\'s', async () => {
    const doc = (await k.call('GET', '/api/v1/openapi.json')).body as { paths: Record<string, Record<string, { 'x-kiln-surface'?: string }>> };
    // The hand-described surfaces (`x-kiln-surface`: Lambda API, MCP, PTY, E2B's in-sandbox routes)
    // speak their own protocols and have their own tenancy tests (tenancy-functions,
    // tenancy-lambda-settings, tenancy-mcp, tenancy-sessions, pty, e2b).
    const routes = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.entries(ops)
        .filter(([, op]) => !op['x-kiln-surface'])
        .map(([m]) => `${m.toUpperCase()} ${path}`),
    );
    const unclassified = routes.filter((r) => !(r in ROUTES));
    expect(unclassified, 'classify these routes in ROUTES').toEqual([]);
    // Deletes last, so that a delete that wrongly works cannot hide what the others did.
    const ordered = [...routes].sort((a, b) => Number(a.startsWith('DELETE')) - Number(b.startsWith('DELETE')));
    for (const route of ordered) {
      const c = ROUTES[route] as Case;
      const [method = '', template = ''] = route.split(' ');
      const url = `${k.url}${pathFor(template)}${c.query ? `?${c.query}` : ''}`;
      const headers: Record<string, string> = { ...beta, ...(c.body !== undefined ? { 'content-type': 'application/json' } : {}), ...(c.raw ? { 'content-type': c.raw.type } : {}) };
      const res = await fetch(url, { method, headers, ...(c.body !== undefined ? { body: JSON.stringify(c.body) } : {}), ...(c.raw ? { body: c.raw.data } : {}) });
      const text = await res.text();
      const expected = { owned: [404], admin: [403], shared: [200], own: [200, 201, 202, 204], link: [403] }[c.kind];
      expect([route, expected.includes(res.status) ? 'ok' : res.status, text.slice(0, 300)]).toEqual([route, 'ok', expect.any(String)]);
      // Alpha's content never shows; alpha's ids only where beta sent them (an error naming the id asked for).
      const sent = url + JSON.stringify(c.body ?? '');
      for (const secret of [ids.session, ids.snapshot, ids.fn, ids.alias, ids.execution, ids.ctx, 'alpha secret', 'alpha-exec', 'alpha-secret-value', 'alpha.example.com']) if (!sent.includes(secret)) expect(text, route).not.toContain(secret);
    }
  });

  it('left alpha\'s session, files, process and function as they were', async () => {
    const s = await k.call('GET', `/api/v1/sessions/${ids.session}`, undefined, alpha);
    expect(s.status).toBe(200);
    expect((await k.call('GET', '/api/v1/volumes/alpha-vol', undefined, alpha)).status).toBe(200);
    const file = await fetch(`${k.url}/api/v1/sessions/${ids.session}/files?path=secret.txt`, { headers: alpha });
    expect(await file.text()).toBe('alpha secret');
    const list = await k.call('GET', `/api/v1/sessions/${ids.session}/files/list?path=.`, undefined, alpha);
    expect((list.body.entries as Array<{ name: string }>).map((e) => e.name).sort()).toEqual(['secret.txt']);
    const procs = await k.call('GET', `/api/v1/sessions/${ids.session}/processes`, undefined, alpha);
    expect((procs.body.processes as Array<{ pid: number; running?: boolean; exitCode?: number | null }>).find((p) => p.pid === ids.pid)).toBeDefined();
    const inv = await k.call('POST', `/api/v1/functions/${ids.fn}/invocations`, {}, alpha);
    expect([inv.status, inv.body.result]).toEqual([200, 'alpha']);
    const aliases = await k.call('GET', `/api/v1/functions/${ids.fn}/aliases`, undefined, alpha);
    expect(aliases.body.aliases.map((a: { name: string; description: string }) => [a.name, a.description])).toEqual([[ids.alias, 'alpha alias']]);
    // Records name their tenant, for the administrators who see every tenant's.
    expect((await k.call('GET', `/api/v1/executions/${ids.execution}`, undefined, admin)).body.tenant).toBe('alpha');
    expect(inv.body.tenant).toBe('alpha');
    const contexts = await k.call('GET', `/api/v1/sessions/${ids.session}/contexts`, undefined, alpha);
    expect(contexts.body.contexts.map((c: { id: string; executionCount: number }) => [c.id, c.executionCount])).toEqual([[ids.ctx, 0]]);
    // Alpha's secret is alpha's still (beta's PUT and DELETE of that name were beta's own).
    expect((await k.call('GET', '/api/v1/secrets', undefined, alpha)).body.secrets.map((x: { name: string; hosts: string[] }) => [x.name, x.hosts])).toEqual([['alpha_secret', ['alpha.example.com']]]);
    // And an administrator sees alpha's session.
    expect((await k.call('GET', `/api/v1/sessions/${ids.session}`, undefined, admin)).status).toBe(200);
  });
});
