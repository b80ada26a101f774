import { CreateFunctionCommand, DeleteFunctionCommand, GetFunctionCommand, InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { run as runCommand } from '../../../executor/dist/nfs/test-support.js';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { libnfsUrl } from '../support/nfs.js';
import { makeZip } from '../support/zip.js';

/**
 * Sessions across the surfaces the route walk (tenancy-routes.test.ts) and the MCP test do not
 * reach: the terminal WebSocket, processes addressed by pid, NFS at the executor's own port and
 * through the gateway, a read-only key on its own tenant's sessions, and an administrator over
 * both tenants, also over the AWS SDK's Lambda client (the rest of the Lambda API as another tenant
 * is tenancy-functions.test.ts'). Tenants alpha and beta hold keys with every tenant scope; beta also holds a
 * read-only key. Another tenant's session must look exactly like one that does not exist.
 */
const ALPHA = 'sessions-alpha-key-0123456789abcdef';
const BETA = 'sessions-beta-key-0123456789abcdef0';
const ADMIN = 'sessions-admin-key-0123456789abcdef';
const MISSING = 'ses_doesnotexist0000000000';

let k: TestKiln;
let betaReader = '';
let betaReaderId = '';
const clients: LambdaClient[] = [];
const as = (key: string) => ({ authorization: `Bearer ${key}` });
const a = { session: '', exportPath: '', pid: 0 };
const b = { session: '' };

beforeAll(async () => {
  k = await startTestKiln({
    templates: { nodejs: { pool: { minIdle: 2 } }, python: null, shell: null, provided: null },
    env: { KILN_API_KEYS: `alpha:${ALPHA},beta:${BETA}`, KILN_ADMIN_API_KEYS: ADMIN, KILN_NFS_PORT: '0' },
  });
  expect((await k.call('POST', '/api/v1/admin/tenants', { id: 'beta' }, as(ADMIN))).status).toBe(201);
  const reader = await k.call('POST', '/api/v1/admin/tenants/beta/keys', { scopes: ['read'], description: 'read-only' }, as(ADMIN));
  expect(reader.status, JSON.stringify(reader.body)).toBe(201);
  betaReader = reader.body.key as string;
  betaReaderId = reader.body.keyId as string;

  const sa = await k.call('POST', '/api/v1/sessions', { template: 'nodejs', timeoutMs: 300_000 }, as(ALPHA));
  expect(sa.status, JSON.stringify(sa.body)).toBe(201);
  a.session = sa.body.id as string;
  a.exportPath = sa.body.nfs.exportPath as string;
  const put = await fetch(`${k.url}/api/v1/sessions/${a.session}/files?path=secret.txt`, { method: 'PUT', headers: { ...as(ALPHA), 'content-type': 'application/octet-stream' }, body: 'alpha secret' });
  expect(put.status).toBe(200);
  const p = await k.call('POST', `/api/v1/sessions/${a.session}/processes`, { command: 'sleep', args: ['600'] }, as(ALPHA));
  expect(p.status, JSON.stringify(p.body)).toBe(201);
  a.pid = p.body.pid as number;

  const sb = await k.call('POST', '/api/v1/sessions', { template: 'nodejs', timeoutMs: 300_000 }, as(BETA));
  expect(sb.status, JSON.stringify(sb.body)).toBe(201);
  b.session = sb.body.id as string;
});
afterAll(async () => {
  for (const c of clients) c.destroy();
  await k?.stop();
});

/** What an upgrade to a session's terminal got: opened (then closed at once), or refused with a status and error body. */
async function terminal(id: string, opts: { key?: string; queryKey?: string }): Promise<{ opened: true } | { opened: false; status: number; body: any }> {
  const query = opts.queryKey !== undefined ? `?api_key=${encodeURIComponent(opts.queryKey)}` : '';
  const ws = new WebSocket(`${k.url.replace('http', 'ws')}/api/v1/sessions/${id}/pty${query}`, { headers: opts.key ? as(opts.key) : {} });
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      ws.close();
      resolve({ opened: true });
    });
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString('utf8')));
      res.on('end', () => resolve({ opened: false, status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    ws.once('error', reject);
  });
}

/** An error body with the session id taken out, to compare "another tenant's" with "none at all". */
const anonymous = (body: unknown, id: string) => JSON.parse(JSON.stringify(body).replaceAll(id, '<id>'));

/** alpha's sleep, as alpha sees it: still running after everything beta tried. */
async function alphaSleepRuns(): Promise<boolean> {
  const list = await k.call('GET', `/api/v1/sessions/${a.session}/processes`, undefined, as(ALPHA));
  expect(list.status).toBe(200);
  return (list.body.processes as Array<{ pid: number; running: boolean }>).some((p) => p.pid === a.pid && p.running);
}

describe('the terminal WebSocket', () => {
  it("refuses beta on alpha's session exactly as on a session that does not exist", async () => {
    const missing = await terminal(MISSING, { key: BETA });
    expect(missing).toMatchObject({ opened: false, status: 404, body: { error: { code: 'SessionNotFound' } } });
    const got = await terminal(a.session, { key: BETA });
    expect(got.opened).toBe(false);
    if (got.opened) return;
    expect({ status: got.status, body: anonymous(got.body, a.session) }).toEqual({ status: 404, body: anonymous((missing as { body: unknown }).body, MISSING) });
  });

  it('refuses a key in the URL (400 KeyInUrl): the owner\'s, beside a good header, another tenant\'s, or on no session, alike', async () => {
    const tries = [
      { id: a.session, opts: { queryKey: ALPHA } },
      { id: a.session, opts: { key: ALPHA, queryKey: ALPHA } },
      { id: a.session, opts: { queryKey: BETA } },
      { id: MISSING, opts: { queryKey: ALPHA } },
      { id: a.session, opts: { queryKey: '' } },
    ];
    const bodies = new Set<string>();
    for (const { id, opts } of tries) {
      const got = await terminal(id, opts);
      expect(got).toMatchObject({ opened: false, status: 400, body: { error: { code: 'KeyInUrl' } } });
      if (!got.opened) bodies.add(JSON.stringify(got.body));
    }
    // One answer for all: it says nothing about the key or the session.
    expect(bodies.size).toBe(1);
  });

  it("refuses beta's read-only key on beta's own session with 403 naming the sessions scope, and no key with 401", async () => {
    const got = await terminal(b.session, { key: betaReader });
    expect(got).toMatchObject({ opened: false, status: 403, body: { error: { code: 'Forbidden' } } });
    expect(got.opened === false && got.body.error.message).toContain('"sessions" scope');
    expect(await terminal(b.session, {})).toMatchObject({ opened: false, status: 401 });
  });

  it('opens for the owner (so the refusals above are not a broken terminal)', async () => {
    expect(await terminal(a.session, { key: ALPHA })).toEqual({ opened: true });
    expect(await terminal(b.session, { key: BETA })).toEqual({ opened: true });
  });
});

describe("alpha's processes, addressed by beta", () => {
  it('cannot be signalled, killed or listed, nor can beta run with stdin in alpha\'s session: each is SessionNotFound', async () => {
    for (const signal of ['SIGTERM', 'SIGKILL', 'SIGINT', 'SIGSTOP']) {
      const res = await k.call('POST', `/api/v1/sessions/${a.session}/processes/${a.pid}/signal`, { signal }, as(BETA));
      expect([signal, res.status, res.body.error?.code]).toEqual([signal, 404, 'SessionNotFound']);
    }
    const listed = await k.call('GET', `/api/v1/sessions/${a.session}/processes`, undefined, as(BETA));
    expect([listed.status, listed.body.error?.code]).toEqual([404, 'SessionNotFound']);
    const stdin = await k.call('POST', `/api/v1/sessions/${a.session}/process/run`, { command: 'sh', args: ['-c', 'cat > /workspace/pwned; kill -9 -1'], stdin: 'beta was here' }, as(BETA));
    expect([stdin.status, stdin.body.error?.code]).toEqual([404, 'SessionNotFound']);
    expect(await alphaSleepRuns()).toBe(true);
  });

  it("are not reached through beta's own session by pid: pids are per sandbox", async () => {
    const res = await k.call('POST', `/api/v1/sessions/${b.session}/processes/${a.pid}/signal`, { signal: 'SIGKILL' }, as(BETA));
    expect([res.status, res.body.error?.code]).toEqual([404, 'ProcessNotFound']);
    expect(await alphaSleepRuns()).toBe(true);
    const files = await k.call('GET', `/api/v1/sessions/${a.session}/files/list?path=.`, undefined, as(ALPHA));
    expect(JSON.stringify(files.body)).not.toContain('pwned');
  });
});

describe("alpha's workspace over NFS", () => {
  /** libnfs tools, killed after 30 s. */
  const nfs = (cmd: 'nfs-ls' | 'nfs-cat', url: string) => runCommand(cmd, [url], 30_000);
  const ports = async (): Promise<Array<[string, number]>> => {
    const stored = JSON.parse((await k.redis.get(`${k.prefix}:ses:${a.session}`)) as string) as { nfs: { upstream: { port: number } } };
    return [
      ['executor', stored.nfs.upstream.port],
      ['gateway', k.kiln.nfsPort as number],
    ];
  };

  it('cannot be mounted, listed or read by beta knowing only the session id, at the executor or the gateway', async () => {
    // Beta cannot learn the export's secret: alpha's session is not beta's to get or list.
    expect((await k.call('GET', `/api/v1/sessions/${a.session}`, undefined, as(BETA))).status).toBe(404);
    expect(JSON.stringify((await k.call('GET', '/api/v1/sessions', undefined, as(BETA))).body)).not.toContain(a.session);
    const secret = a.exportPath.slice(a.session.length + 2);
    expect(secret).toMatch(/^[0-9a-f]{32}$/);
    for (const [where, port] of await ports()) {
      // The almost-right secret differs in its last digit (a fixed '0' would be the secret itself one time in 16).
      const almost = `${secret.slice(0, 31)}${secret.endsWith('0') ? '1' : '0'}`;
      for (const guess of [a.session, `${a.session}-${'0'.repeat(32)}`, `${a.session}-${almost}`]) {
        const ls = await nfs('nfs-ls', libnfsUrl(port, guess));
        expect([where, guess, ls.code === 0, ls.stdout]).toEqual([where, guess, false, '']);
        const cat = await nfs('nfs-cat', libnfsUrl(port, guess, '/secret.txt'));
        expect([where, guess, cat.code === 0, cat.stdout.includes('alpha secret')]).toEqual([where, guess, false, false]);
      }
    }
  });

  it('is listed and read by alpha with the export it was given, at both ports', async () => {
    for (const [where, port] of await ports()) {
      const ls = await nfs('nfs-ls', libnfsUrl(port, a.exportPath.slice(1)));
      expect([where, ls.code, ls.stdout.includes('secret.txt')], ls.stderr).toEqual([where, 0, true]);
      const cat = await nfs('nfs-cat', libnfsUrl(port, a.exportPath.slice(1), '/secret.txt'));
      expect([where, cat.code, cat.stdout], cat.stderr).toEqual([where, 0, 'alpha secret']);
    }
  });
});

describe("a read-only key on its own tenant's sessions", () => {
  it('lists and gets them, and reads files', async () => {
    const list = await k.call('GET', '/api/v1/sessions', undefined, as(betaReader));
    expect(list.status).toBe(200);
    expect((list.body.sessions as Array<{ id: string }>).map((s) => s.id)).toEqual([b.session]);
    const got = await k.call('GET', `/api/v1/sessions/${b.session}`, undefined, as(betaReader));
    expect([got.status, got.body.id]).toEqual([200, b.session]);
    expect((await k.call('GET', `/api/v1/sessions/${b.session}/processes`, undefined, as(betaReader))).status).toBe(200);
  });

  it('cannot create, run, write, signal or delete: 403 naming the sessions scope, the same for any session id', async () => {
    const tries: Array<[string, string, unknown]> = [
      ['POST', '/api/v1/sessions', { template: 'nodejs' }],
      ['POST', `/api/v1/sessions/${b.session}/process/run`, { command: 'touch', args: ['/workspace/reader'] }],
      ['POST', `/api/v1/sessions/${b.session}/processes`, { command: 'sleep', args: ['1'] }],
      ['POST', `/api/v1/sessions/${b.session}/execute`, { code: 'exports.handler = async () => 1' }],
      ['POST', `/api/v1/sessions/${b.session}/files/mkdir`, { path: 'reader-dir' }],
      ['POST', `/api/v1/sessions/${b.session}/keepalive`, { timeoutMs: 600_000 }],
      ['POST', `/api/v1/sessions/${b.session}/processes/1/signal`, { signal: 'SIGKILL' }],
      ['DELETE', `/api/v1/sessions/${b.session}`, undefined],
    ];
    for (const [method, path, body] of tries) {
      const res = await k.call(method, path, body, as(betaReader));
      expect([method, path, res.status, res.body.error?.code, res.body.error?.data?.scope]).toEqual([method, path, 403, 'Forbidden', 'sessions']);
      expect(res.body.error.message).toContain('"sessions" scope');
      // The refusal is the key's, whoever owns the id: it tells nothing about alpha's session.
      const other = await k.call(method, path.replace(b.session, a.session), body, as(betaReader));
      expect(other.status).toBe(403);
    }
    const write = await fetch(`${k.url}/api/v1/sessions/${b.session}/files?path=reader.txt`, { method: 'PUT', headers: { ...as(betaReader), 'content-type': 'application/octet-stream' }, body: 'x' });
    expect(write.status).toBe(403);
    const list = await k.call('GET', `/api/v1/sessions/${b.session}/files/list?path=.`, undefined, as(BETA));
    expect(JSON.stringify(list.body)).not.toMatch(/reader/);
    expect((await k.call('GET', '/api/v1/sessions', undefined, as(betaReader))).body.sessions).toHaveLength(1);
  });

  it("gets 404 for alpha's session, as for one that does not exist", async () => {
    const other = await k.call('GET', `/api/v1/sessions/${a.session}`, undefined, as(betaReader));
    const missing = await k.call('GET', `/api/v1/sessions/${MISSING}`, undefined, as(betaReader));
    expect([other.status, anonymous(other.body, a.session)]).toEqual([404, anonymous(missing.body, MISSING)]);
  });
});

describe('an administrator', () => {
  it("sees both tenants' sessions with their tenant, and deletes both", async () => {
    const list = await k.call('GET', '/api/v1/sessions', undefined, as(ADMIN));
    expect(list.status).toBe(200);
    const tenants = Object.fromEntries((list.body.sessions as Array<{ id: string; tenant: string }>).map((s) => [s.id, s.tenant]));
    expect(tenants).toMatchObject({ [a.session]: 'alpha', [b.session]: 'beta' });
    for (const [id, tenant] of [
      [a.session, 'alpha'],
      [b.session, 'beta'],
    ]) {
      const got = await k.call('GET', `/api/v1/sessions/${id}`, undefined, as(ADMIN));
      expect([got.status, got.body.tenant]).toEqual([200, tenant]);
    }
    expect((await k.call('GET', `/api/v1/sessions/${a.session}/files?path=secret.txt`, undefined, as(ADMIN))).body).toBe('alpha secret');
    for (const id of [a.session, b.session]) expect((await k.call('DELETE', `/api/v1/sessions/${id}`, undefined, as(ADMIN))).status).toBe(204);
    expect((await k.call('GET', `/api/v1/sessions/${a.session}`, undefined, as(ALPHA))).status).toBe(404);
    expect((await k.call('GET', `/api/v1/sessions/${b.session}`, undefined, as(BETA))).status).toBe(404);
  });
});

describe('the Lambda API (AWS SDK) with a read-only key and as an administrator', () => {
  const zip = (tenant: string) => makeZip([{ path: 'index.js', content: `exports.handler = async () => '${tenant}'` }]);
  const lambda = (accessKeyId: string, secretAccessKey: string): LambdaClient => {
    const c = new LambdaClient({ endpoint: k.url, region: 'us-east-1', credentials: { accessKeyId, secretAccessKey }, maxAttempts: 1 });
    clients.push(c);
    return c;
  };
  const create = (c: LambdaClient, tenant: string) => c.send(new CreateFunctionCommand({ FunctionName: 'shared-name', Runtime: 'nodejs20.x', Role: 'x', Handler: 'index.handler', Code: { ZipFile: zip(tenant) } }));
  const arn = (tenant: string) => `arn:aws:lambda:us-east-1:${tenant}:function:shared-name`;
  const denied = { name: 'AccessDeniedException', $metadata: { httpStatusCode: 403 } };
  const notFound = { name: 'ResourceNotFoundException', $metadata: { httpStatusCode: 404 } };

  it("a read-only key (SigV4 with its key id) gets its tenant's function, and is denied creating, invoking and deleting", async () => {
    await create(lambda('any', ALPHA), 'alpha');
    await create(lambda('any', BETA), 'beta');
    const reader = lambda(betaReaderId, betaReader);
    expect((await reader.send(new GetFunctionCommand({ FunctionName: 'shared-name' }))).Configuration?.FunctionArn).toBe(arn('beta'));
    await expect(reader.send(new GetFunctionCommand({ FunctionName: arn('alpha') }))).rejects.toMatchObject(notFound);
    await expect(create(reader, 'reader')).rejects.toMatchObject(denied);
    for (const FunctionName of ['shared-name', arn('alpha')]) {
      await expect(reader.send(new InvokeCommand({ FunctionName, Payload: Buffer.from('{}') })), FunctionName).rejects.toMatchObject(denied);
      await expect(reader.send(new DeleteFunctionCommand({ FunctionName })), FunctionName).rejects.toMatchObject(denied);
    }
    const invoked = await lambda('any', BETA).send(new InvokeCommand({ FunctionName: 'shared-name', Payload: Buffer.from('{}') }));
    expect(Buffer.from(invoked.Payload ?? []).toString()).toBe('"beta"');
  });

  it("an administrator gets, invokes and deletes both tenants' functions by ARN", async () => {
    const admin = lambda('any', ADMIN);
    for (const tenant of ['alpha', 'beta']) {
      expect((await admin.send(new GetFunctionCommand({ FunctionName: arn(tenant) }))).Configuration?.FunctionArn).toBe(arn(tenant));
      const ran = await admin.send(new InvokeCommand({ FunctionName: arn(tenant), Payload: Buffer.from('{}') }));
      expect(Buffer.from(ran.Payload ?? []).toString()).toBe(`"${tenant}"`);
    }
    for (const tenant of ['alpha', 'beta']) await admin.send(new DeleteFunctionCommand({ FunctionName: arn(tenant) }));
    await expect(lambda('any', ALPHA).send(new GetFunctionCommand({ FunctionName: 'shared-name' }))).rejects.toMatchObject(notFound);
    await expect(lambda('any', BETA).send(new GetFunctionCommand({ FunctionName: 'shared-name' }))).rejects.toMatchObject(notFound);
  });
});
