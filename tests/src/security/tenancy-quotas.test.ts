import { CreateFunctionCommand, InvokeCommand, LambdaClient, ListFunctionsCommand, TooManyRequestsException } from '@aws-sdk/client-lambda';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { Keys } from '@kiln/control-plane/store/keys';
import { Quotas } from '@kiln/control-plane/tenancy/quotas';
import { executorPids } from '../support/faults.js';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { waitFor } from '../support/wait.js';
import { makeZip } from '../support/zip.js';

/**
 * A tenant cannot exhaust the platform for the others: each quota (tenancy/quotas.ts) refuses
 * with 429 QuotaExceeded (Retry-After, data { quota, limit, used }) over REST, as
 * TooManyRequestsException with AWS's Reason over the Lambda API (the official SDK) and as a
 * tool error over MCP; another tenant is unaffected, and the quota recovers when usage drops.
 * Each scenario has a tenant of its own, made with its quotas before its first request (limits
 * are cached per replica for 5 s).
 */
const ADMIN = 'quotas-admin-key-0123456789abcdef';

let k: TestKiln;
const clients: LambdaClient[] = [];
const keyOf = new Map<string, string>();

beforeAll(async () => {
  k = await startTestKiln({
    templates: { nodejs: { pool: { minIdle: 1, maxSandboxes: 6 } }, python: null, shell: null, provided: null },
    env: { KILN_ADMIN_API_KEYS: ADMIN },
  });
  const tenants: Record<string, Record<string, number>> = {
    sq: { sessions: 1 },
    mq: { memoryMB: 300 },
    fq: { functions: 1 },
    frace: { functions: 3 },
    eq: { executions: 2 },
    race: { executions: 5 },
    rq: { requestsPerSecond: 5 },
    lq: { sessions: 1 },
    leak: { executions: 1 },
    other: {},
    // The administrator key's own tenant (KILN_ADMIN_API_KEYS keys belong to `default`).
    default: { functions: 0 },
  };
  for (const [id, quotas] of Object.entries(tenants)) {
    expect((await k.call('POST', '/api/v1/admin/tenants', { id, quotas }, as(ADMIN))).status).toBe(201);
    if (id === 'default') continue;
    const key = await k.call('POST', `/api/v1/admin/tenants/${id}/keys`, {}, as(ADMIN));
    keyOf.set(id, key.body.key as string);
  }
}, 120_000);
afterAll(async () => {
  for (const c of clients) c.destroy();
  await k?.stop();
});

function as(key: string): Record<string, string> {
  return { authorization: `Bearer ${key}` };
}
const call = (tenant: string, method: string, path: string, body?: unknown) => k.call(method, path, body, as(keyOf.get(tenant) as string));
function lambdaOf(tenant: string): LambdaClient {
  const key = keyOf.get(tenant) as string;
  // SigV4 with the stored key: its id is the access key id. One attempt: the SDK would retry throttling.
  const c = new LambdaClient({ endpoint: k.url, region: 'us-east-1', credentials: { accessKeyId: key.split('_')[1] as string, secretAccessKey: key }, maxAttempts: 1 });
  clients.push(c);
  return c;
}

/** The refusal every quota gives over REST. */
function expectQuota(res: { status: number; body: any; headers: Headers }, quota: string, limit: number, used: number, retryAfter: string): void {
  expect([res.status, res.body?.error?.code], JSON.stringify(res.body)).toEqual([429, 'QuotaExceeded']);
  expect(res.body.error.data).toMatchObject({ quota, limit, used });
  expect(res.body.error.message).toContain(quota);
  expect(res.headers.get('retry-after')).toBe(retryAfter);
}

async function lambdaRefusal(p: Promise<unknown>): Promise<TooManyRequestsException> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TooManyRequestsException);
  return err as TooManyRequestsException;
}

const SLEEPER = 'exports.handler = async (e) => { await new Promise((r) => setTimeout(r, e.ms ?? 0)); return { ok: true } }';

const finished = (tenant: string, id: string) => async () => {
  const r = await call(tenant, 'GET', `/api/v1/executions/${id}`);
  return r.body.status !== 'queued' && r.body.status !== 'running' ? r.body : undefined;
};

describe('sessions and memory', () => {
  it('refuses a second session over `sessions: 1` (REST and MCP), lets another tenant create one meanwhile, and recovers once the first is deleted', async () => {
    const first = await call('sq', 'POST', '/api/v1/sessions', { template: 'nodejs' });
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    expectQuota(await call('sq', 'POST', '/api/v1/sessions', { template: 'nodejs' }), 'sessions', 1, 1, '5');

    const transport = new StreamableHTTPClientTransport(new URL(`${k.url}/mcp/full`), { requestInit: { headers: as(keyOf.get('sq') as string) } });
    const mcp = new Client({ name: 'quotas-test', version: '1.0.0' });
    await mcp.connect(transport);
    try {
      const out = (await mcp.callTool({ name: 'sandbox_create', arguments: {} })) as { isError?: boolean; structuredContent?: any; content: Array<{ text?: string }> };
      expect(out.isError).toBe(true);
      expect(out.structuredContent.error).toMatchObject({ code: 'QuotaExceeded', data: { quota: 'sessions', limit: 1, used: 1 } });
      expect(out.content[0]?.text).toMatch(/QuotaExceeded: .*sessions quota/);
    } finally {
      await transport.terminateSession();
      await mcp.close();
    }

    const others = await call('other', 'POST', '/api/v1/sessions', { template: 'nodejs' });
    expect(others.status).toBe(201);
    expect((await call('other', 'DELETE', `/api/v1/sessions/${others.body.id}`)).status).toBe(204);

    expect((await call('sq', 'DELETE', `/api/v1/sessions/${first.body.id}`)).status).toBe(204);
    const again = await call('sq', 'POST', '/api/v1/sessions', { template: 'nodejs' });
    expect(again.status, JSON.stringify(again.body)).toBe(201);
    expect((await call('sq', 'DELETE', `/api/v1/sessions/${again.body.id}`)).status).toBe(204);
  });

  it('counts each session\'s template memory against `memoryMB` (256 MB sandboxes, 300 MB allowed) and recovers', async () => {
    const first = await call('mq', 'POST', '/api/v1/sessions', { template: 'nodejs' });
    expect(first.status).toBe(201);
    expectQuota(await call('mq', 'POST', '/api/v1/sessions', { template: 'nodejs' }), 'memoryMB', 300, 256, '5');
    expect((await call('mq', 'DELETE', `/api/v1/sessions/${first.body.id}`)).status).toBe(204);
    const again = await call('mq', 'POST', '/api/v1/sessions', { template: 'nodejs' });
    expect(again.status).toBe(201);
    expect((await call('mq', 'DELETE', `/api/v1/sessions/${again.body.id}`)).status).toBe(204);
  });
});

describe('functions', () => {
  it('refuses a second function over `functions: 1` (REST; Lambda SDK: TooManyRequestsException FunctionLimitExceeded) and recovers once one is deleted', async () => {
    const fn = (name: string) => ({ name, runtime: 'nodejs20.x', code: { source: SLEEPER } });
    expect((await call('fq', 'POST', '/api/v1/functions', fn('one'))).status).toBe(201);
    expectQuota(await call('fq', 'POST', '/api/v1/functions', fn('two')), 'functions', 1, 1, '30');
    const zip = makeZip([{ path: 'index.js', content: SLEEPER }]);
    const err = await lambdaRefusal(lambdaOf('fq').send(new CreateFunctionCommand({ FunctionName: 'two', Runtime: 'nodejs20.x', Role: 'x', Handler: 'index.handler', Code: { ZipFile: zip } })));
    expect([err.$metadata.httpStatusCode, err.Reason, err.retryAfterSeconds]).toEqual([429, 'FunctionLimitExceeded', '30']);
    expect(err.message).toContain('functions quota');
    // Another tenant makes as many as it likes.
    expect((await call('other', 'POST', '/api/v1/functions', fn('one'))).status).toBe(201);
    expect((await call('other', 'POST', '/api/v1/functions', fn('two'))).status).toBe(201);

    expect((await call('fq', 'DELETE', '/api/v1/functions/one')).status).toBe(204);
    expect((await call('fq', 'POST', '/api/v1/functions', fn('two'))).status).toBe(201);
  });

  it('lets 20 concurrent creates make exactly `functions: 3` (the store checks the quota as it creates)', async () => {
    const made = await Promise.all(Array.from({ length: 20 }, (_, i) => call('frace', 'POST', '/api/v1/functions', { name: `f${i}`, runtime: 'nodejs20.x', code: { source: SLEEPER } })));
    expect(made.filter((r) => r.status === 201)).toHaveLength(3);
    for (const r of made.filter((x) => x.status !== 201)) expect([r.status, r.body.error.code, r.body.error.data.quota, r.body.error.data.limit]).toEqual([429, 'QuotaExceeded', 'functions', 3]);
    expect((await call('frace', 'GET', '/api/v1/functions')).body.functions).toHaveLength(3);
  });
});

describe('executions (queued + running)', () => {
  it('refuses a third execution over `executions: 2`, async and sync, REST and Lambda SDK (ConcurrentInvocationLimitExceeded); another tenant runs meanwhile; recovers when they finish', async () => {
    expect((await call('eq', 'POST', '/api/v1/functions', { name: 'slow', runtime: 'nodejs20.x', timeout: 30, code: { source: SLEEPER } })).status).toBe(201);
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const queued = await call('eq', 'POST', '/api/v1/functions/slow/invocations?type=Event', { ms: 4000 });
      expect(queued.status, JSON.stringify(queued.body)).toBe(202);
      ids.push(queued.body.id as string);
    }
    expectQuota(await call('eq', 'POST', '/api/v1/functions/slow/invocations?type=Event', { ms: 0 }), 'executions', 2, 2, '1');
    expectQuota(await call('eq', 'POST', '/api/v1/functions/slow/invocations', { ms: 0 }), 'executions', 2, 2, '1');
    expectQuota(await call('eq', 'POST', '/api/v1/executions', { code: SLEEPER, language: 'nodejs' }), 'executions', 2, 2, '1');
    const lambda = lambdaOf('eq');
    for (const InvocationType of ['Event', 'RequestResponse'] as const) {
      const err = await lambdaRefusal(lambda.send(new InvokeCommand({ FunctionName: 'slow', InvocationType, Payload: Buffer.from('{}') })));
      expect([err.$metadata.httpStatusCode, err.Reason, err.retryAfterSeconds], InvocationType).toEqual([429, 'ConcurrentInvocationLimitExceeded', '1']);
    }
    // Another tenant is not held up by eq's exhaustion.
    const theirs = await call('other', 'POST', '/api/v1/executions', { code: 'exports.handler = async () => 42', language: 'nodejs' });
    expect([theirs.status, theirs.body.result]).toEqual([200, 42]);

    for (const id of ids) expect((await waitFor(`execution ${id}`, finished('eq', id))).status).toBe('succeeded');
    const after = await call('eq', 'POST', '/api/v1/functions/slow/invocations', { ms: 0 });
    expect([after.status, after.body.status]).toEqual([200, 'succeeded']);
    const viaSdk = await lambda.send(new InvokeCommand({ FunctionName: 'slow', Payload: Buffer.from('{}') }));
    expect(viaSdk.StatusCode).toBe(200);
  });

  it('lets two concurrent submitters (60 requests at once, and a second replica\'s quota owner on its own connection) admit exactly `executions: 5`', async () => {
    expect((await call('race', 'POST', '/api/v1/functions', { name: 'slow', runtime: 'nodejs20.x', timeout: 30, code: { source: SLEEPER } })).status).toBe(201);
    const redis = new Redis({ path: inject('redisSocket') });
    try {
      // What another replica holds: its own Quotas on its own Redis connection, same deployment.
      const replica = new Quotas(redis, new Keys(k.prefix), { findTenant: () => Promise.resolve({ id: 'race', description: '', createdAt: 0, quotas: { executions: 5 } }) }, { sessions: 0, executions: 0, functions: 0, memoryMB: 0, requestsPerSecond: 0, volumes: 0, volumeMB: 0 }, {
        finishedJobs: () => Promise.resolve([]),
        endedSessions: () => Promise.resolve([]),
      });
      const viaApi = Array.from({ length: 60 }, () => call('race', 'POST', '/api/v1/functions/slow/invocations?type=Event', { ms: 4000 }));
      const viaReplica = Array.from({ length: 60 }, (_, i) =>
        replica.admitExecution('race', 'nodejs', `replica-${i}`).then(
          () => `replica-${i}`,
          (err: Error) => err.name,
        ),
      );
      const api = await Promise.all(viaApi);
      const other = await Promise.all(viaReplica);
      const admitted = api.filter((r) => r.status === 202).length + other.filter((r) => r.startsWith('replica-')).length;
      expect(admitted).toBe(5);
      for (const r of api.filter((x) => x.status !== 202)) expect([r.status, r.body.error.code, r.body.error.data.quota]).toEqual([429, 'QuotaExceeded', 'executions']);
      expect(other.filter((r) => !r.startsWith('replica-')).every((r) => r === 'QuotaExceeded')).toBe(true);
      expect(await k.redis.zcard(`${k.prefix}:quota:inflight:race`)).toBe(5);
      for (const id of other.filter((r) => r.startsWith('replica-'))) await replica.releaseExecution('race', 'nodejs', id);
    } finally {
      redis.disconnect();
    }
  });

  it('drops usage a crashed control plane left behind (a member whose job does not exist) when the tenant reaches its limit', async () => {
    expect((await call('leak', 'POST', '/api/v1/functions', { name: 'f', runtime: 'nodejs20.x', code: { source: SLEEPER } })).status).toBe(201);
    // A replica admitted this job, then died before queueing it (or after it ran, before releasing it).
    await k.redis.zadd(`${k.prefix}:quota:inflight:leak`, Date.now() - 60_000, 'nodejs/00000000-0000-4000-8000-000000000000');
    const res = await call('leak', 'POST', '/api/v1/functions/f/invocations', { ms: 0 });
    expect([res.status, res.body.status], JSON.stringify(res.body)).toEqual([200, 'succeeded']);
    expect(await k.redis.zcard(`${k.prefix}:quota:inflight:leak`)).toBe(0);
  });
});

describe('requests per second (per replica)', () => {
  it('refuses a burst over `requestsPerSecond: 5` (REST; Lambda SDK: CallerRateLimitExceeded), not another tenant\'s, and recovers a second later', async () => {
    const burst = await Promise.all(Array.from({ length: 20 }, () => call('rq', 'GET', '/api/v1/functions')));
    const refused = burst.filter((r) => r.status === 429);
    expect(burst.filter((r) => r.status === 200).length).toBeLessThanOrEqual(6);
    expect(refused.length).toBeGreaterThanOrEqual(14);
    expectQuota(refused[0] as (typeof burst)[number], 'requestsPerSecond', 5, 5, '1');
    // A burst through the SDK too: one call after the REST burst may already find a token the
    // bucket refilled meanwhile (5 a second: one every 200 ms, less than a loaded machine takes).
    const sdk = lambdaOf('rq');
    const outcomes = await Promise.allSettled(Array.from({ length: 12 }, () => sdk.send(new ListFunctionsCommand({}))));
    const rejected = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
    expect(rejected.length).toBeGreaterThanOrEqual(6);
    expect(rejected[0]?.reason).toBeInstanceOf(TooManyRequestsException);
    const err = rejected[0]?.reason as TooManyRequestsException;
    expect([err.$metadata.httpStatusCode, err.Reason, err.retryAfterSeconds]).toEqual([429, 'CallerRateLimitExceeded', '1']);
    expect((await call('other', 'GET', '/api/v1/functions')).status).toBe(200);

    await new Promise((r) => setTimeout(r, 1_200));
    expect((await call('rq', 'GET', '/api/v1/functions')).status).toBe(200);
  });
});

describe('administrators', () => {
  it('holds an administrator key to its own tenant\'s quotas (default: `functions: 0`)', async () => {
    // The admin's tenant limits were read (and cached for 5 s) by its first request, before the
    // `default` record existed: wait for the cache to turn, creating nothing meanwhile that stays.
    let n = 0;
    const refused = await waitFor('the default tenant\'s override to apply', async () => {
      const res = await k.call('POST', '/api/v1/functions', { name: `admin-${n++}`, runtime: 'nodejs20.x', code: { source: SLEEPER } }, as(ADMIN));
      return res.status === 429 ? res : undefined;
    }, 15_000, 500);
    expectQuota(refused, 'functions', 0, n - 1, '30');
  });
});

// Last: it kills the template's executor, which the keeper then replaces.
describe('a lost session', () => {
  it('stops counting once lost (its executor SIGKILLed), before anyone deletes it', { timeout: 60_000 }, async () => {
    const first = await call('lq', 'POST', '/api/v1/sessions', { template: 'nodejs' });
    expect(first.status).toBe(201);
    expectQuota(await call('lq', 'POST', '/api/v1/sessions', { template: 'nodejs' }), 'sessions', 1, 1, '5');
    const record = JSON.parse((await k.redis.get(`${k.prefix}:ses:${first.body.id}`)) as string) as { executorId: string };
    const exe = executorPids(k.dataDir).find((e) => e.id === record.executorId);
    if (!exe) throw new Error(`no state file for executor ${record.executorId}`);
    process.kill(exe.pid, 'SIGKILL');
    await waitFor('the session to be lost', async () => ((await call('lq', 'GET', `/api/v1/sessions/${first.body.id}`)).body.status === 'lost' ? true : undefined));
    const again = await call('lq', 'POST', '/api/v1/sessions', { template: 'nodejs' });
    expect(again.status, JSON.stringify(again.body)).toBe(201);
    for (const id of [first.body.id, again.body.id]) expect((await call('lq', 'DELETE', `/api/v1/sessions/${id}`)).status).toBe(204);
  });
});
