import { execFile } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CreateFunctionCommand, DeleteFunctionCommand, GetFunctionCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { makeZip } from '../support/zip.js';

/**
 * The admin API for tenants and keys, attacked as a tenant would: keys made here work on every
 * surface, are kept nowhere in plain text, stop working when deleted, and only administrators
 * reach these routes.
 */
const ADMIN = 'tenants-admin-key-0123456789abcdef';
const ALPHA = 'tenants-alpha-key-0123456789abcdef';

let k: TestKiln;
beforeAll(async () => {
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 0 } }, python: null, shell: null, provided: null }, env: { KILN_API_KEYS: `alpha:${ALPHA}`, KILN_ADMIN_API_KEYS: ADMIN } });
});
afterAll(async () => {
  await k?.stop();
});

const CLI = fileURLToPath(new URL('../../../control-plane/dist/cli.js', import.meta.url));
/** Runs `kiln <args>` against the test's Kiln; resolves to exit code, stdout and stderr. */
async function kiln(args: string[], key: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH, KILN_URL: k.url, KILN_API_KEY: key }, timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

const as = (key: string) => ({ authorization: `Bearer ${key}` });
const admin = as(ADMIN);

/** Every string value in this deployment's Redis keys (strings and hashes), to look for secrets in. */
async function redisText(): Promise<string> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await k.redis.scan(cursor, 'MATCH', `${k.prefix}:*`, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      const type = await k.redis.type(key);
      if (type === 'string') out.push((await k.redis.get(key)) ?? '');
      if (type === 'hash') out.push(...Object.entries(await k.redis.hgetall(key)).flat());
    }
  } while (cursor !== '0');
  return out.join('\n');
}

describe('tenants and keys (admin API)', () => {
  it('only administrators reach the admin routes; a tenant key gets 403, no key 401', async () => {
    expect((await k.call('GET', '/api/v1/admin/tenants')).status).toBe(401);
    const refused = await k.call('GET', '/api/v1/admin/tenants', undefined, as(ALPHA));
    expect(refused.status).toBe(403);
    expect(refused.body.error).toMatchObject({ code: 'Forbidden', data: { scope: 'admin' } });
    expect((await k.call('POST', '/api/v1/admin/tenants', { id: 'sneaky' }, as(ALPHA))).status).toBe(403);
    expect((await k.call('GET', '/api/v1/admin/tenants', undefined, admin)).status).toBe(200);
    // The deployment's metrics too: they name every template and tenant.
    expect((await k.call('GET', '/metrics')).status).toBe(401);
    expect((await k.call('GET', '/metrics', undefined, as(ALPHA))).status).toBe(403);
    expect((await k.call('GET', '/metrics', undefined, admin)).status).toBe(200);
  });

  it('refuses bad tenant ids, duplicates and unknown fields with 4xx codes', async () => {
    expect((await k.call('POST', '/api/v1/admin/tenants', { id: 'Bad Id!' }, admin)).body.error.code).toBe('InvalidRequest');
    // Twelve digits would read as an AWS account id in ARNs (the caller's own tenant).
    expect((await k.call('POST', '/api/v1/admin/tenants', { id: '123456789012' }, admin)).status).toBe(400);
    expect((await k.call('POST', '/api/v1/admin/tenants', { id: 'dup' }, admin)).status).toBe(201);
    const again = await k.call('POST', '/api/v1/admin/tenants', { id: 'dup' }, admin);
    expect([again.status, again.body.error.code]).toEqual([409, 'TenantExists']);
    expect((await k.call('POST', '/api/v1/admin/tenants', { id: 'x1', owner: 'me' }, admin)).status).toBe(400);
    expect((await k.call('POST', '/api/v1/admin/tenants/nobody/keys', {}, admin)).status).toBe(404);
    expect((await k.call('POST', '/api/v1/admin/tenants/dup/keys', { scopes: ['root'] }, admin)).status).toBe(400);
    expect((await k.call('DELETE', '/api/v1/admin/tenants/dup', undefined, admin)).status).toBe(204);
  });

  it('a key is shown once, stored hashed and sealed (never in plain text), works as Bearer and as a SigV4 credential, and stops working once deleted', async () => {
    expect((await k.call('POST', '/api/v1/admin/tenants', { id: 'acme', description: 'a customer', quotas: { sessions: 3 } }, admin)).status).toBe(201);
    const made = await k.call('POST', '/api/v1/admin/tenants/acme/keys', { description: 'ci' }, admin);
    expect(made.status).toBe(201);
    const { key, keyId } = made.body as { key: string; keyId: string };
    expect(key).toMatch(/^kiln_[0-9a-f]{16}_/);
    expect(made.body.scopes).toEqual(['sessions', 'functions', 'invoke', 'read']);

    // Nowhere in Redis, and never shown again.
    const stored = await redisText();
    expect(stored).toContain(keyId);
    expect(stored).not.toContain(key);
    expect(stored).not.toContain(key.slice(-43));
    const listed = await k.call('GET', '/api/v1/admin/tenants/acme/keys', undefined, admin);
    expect(listed.body.keys).toEqual([expect.objectContaining({ keyId, tenant: 'acme', description: 'ci' })]);
    expect(JSON.stringify(listed.body)).not.toContain(key.slice(-43));
    // The sealing key lives outside Redis, readable by the control plane's user only.
    expect(statSync(join(k.dataDir, 'secret.key')).mode & 0o077).toBe(0);
    expect(stored).not.toContain(readFileSync(join(k.dataDir, 'secret.key'), 'utf8').trim());

    // Bearer: the key acts as its tenant.
    expect((await k.call('GET', '/api/v1/sessions', undefined, as(key))).status).toBe(200);
    // SigV4: access key id = key id, secret = key; a wrong secret for that id is refused.
    const lambda = new LambdaClient({ endpoint: k.url, region: 'us-east-1', credentials: { accessKeyId: keyId, secretAccessKey: key }, maxAttempts: 1 });
    const forged = new LambdaClient({ endpoint: k.url, region: 'us-east-1', credentials: { accessKeyId: keyId, secretAccessKey: ALPHA }, maxAttempts: 1 });
    const zip = makeZip([{ path: 'index.js', content: 'exports.handler = async () => 1;' }]);
    try {
      await lambda.send(new CreateFunctionCommand({ FunctionName: 'acme-fn', Runtime: 'nodejs20.x', Role: 'r', Handler: 'index.handler', Code: { ZipFile: zip } }));
      expect((await lambda.send(new GetFunctionCommand({ FunctionName: 'acme-fn' }))).Configuration?.FunctionName).toBe('acme-fn');
      await expect(forged.send(new GetFunctionCommand({ FunctionName: 'acme-fn' }))).rejects.toMatchObject({ name: 'InvalidSignatureException' });
      await lambda.send(new DeleteFunctionCommand({ FunctionName: 'acme-fn' }));
    } finally {
      lambda.destroy();
      forged.destroy();
    }

    // A tenant key cannot reach the admin API, however it is presented.
    expect((await k.call('GET', '/api/v1/admin/tenants', undefined, { 'x-api-key': key })).status).toBe(403);

    expect((await k.call('DELETE', `/api/v1/admin/tenants/acme/keys/${keyId}`, undefined, admin)).status).toBe(204);
    expect((await k.call('GET', '/api/v1/sessions', undefined, as(key))).status).toBe(401);
    expect((await k.call('DELETE', `/api/v1/admin/tenants/acme/keys/${keyId}`, undefined, admin)).status).toBe(404);
  });

  it('scopes: a read-only key reads but cannot create, deploy or invoke; a key of another tenant cannot be deleted through this tenant', async () => {
    await k.call('POST', '/api/v1/admin/tenants', { id: 'viewer' }, admin);
    await k.call('POST', '/api/v1/admin/tenants', { id: 'other' }, admin);
    const reader = (await k.call('POST', '/api/v1/admin/tenants/viewer/keys', { scopes: ['read'] }, admin)).body as { key: string; keyId: string };
    const otherKey = (await k.call('POST', '/api/v1/admin/tenants/other/keys', {}, admin)).body as { key: string; keyId: string };
    expect((await k.call('GET', '/api/v1/sessions', undefined, as(reader.key))).status).toBe(200);
    expect((await k.call('GET', '/api/v1/templates', undefined, as(reader.key))).status).toBe(200);
    for (const [method, path, body] of [
      ['POST', '/api/v1/sessions', { template: 'nodejs' }],
      ['POST', '/api/v1/executions', { code: 'exports.handler = async () => 1', language: 'nodejs' }],
      ['POST', '/api/v1/functions', { name: 'nope', runtime: 'nodejs20.x', code: { source: 'exports.handler = async () => 1' } }],
      ['POST', '/api/v1/functions/nope/invocations', {}],
      ['PUT', '/api/v1/templates/nodejs', { network: 'outbound' }],
    ] as const) {
      const res = await k.call(method, path, body, as(reader.key));
      expect([path, res.status, res.body.error?.code]).toEqual([path, 403, 'Forbidden']);
    }
    // A key id is addressed through its own tenant only.
    expect((await k.call('DELETE', `/api/v1/admin/tenants/viewer/keys/${otherKey.keyId}`, undefined, admin)).status).toBe(404);
    expect((await k.call('GET', '/api/v1/sessions', undefined, as(otherKey.key))).status).toBe(200);
    // Deleting a tenant ends its keys.
    expect((await k.call('DELETE', '/api/v1/admin/tenants/other', undefined, admin)).status).toBe(204);
    expect((await k.call('GET', '/api/v1/sessions', undefined, as(otherKey.key))).status).toBe(401);
  });

  it('changes quotas as a whole and refuses unknown quota names', async () => {
    await k.call('POST', '/api/v1/admin/tenants', { id: 'quota-co' }, admin);
    const set = await k.call('PATCH', '/api/v1/admin/tenants/quota-co', { quotas: { sessions: 2, memoryMB: 1024 } }, admin);
    expect(set.body.quotas).toEqual({ sessions: 2, memoryMB: 1024 });
    expect((await k.call('PATCH', '/api/v1/admin/tenants/quota-co', { quotas: { cpus: 9 } }, admin)).status).toBe(400);
    expect((await k.call('PATCH', '/api/v1/admin/tenants/quota-co', { quotas: { sessions: -1 } }, admin)).status).toBe(400);
    expect((await k.call('PATCH', '/api/v1/admin/tenants/quota-co', { quotas: {} }, admin)).body.quotas).toEqual({});
    expect((await k.call('PATCH', '/api/v1/admin/tenants/nobody', { quotas: {} }, admin)).status).toBe(404);
  });

  it('the CLI manages tenants and keys with an administrator key, and says why a tenant key is refused', async () => {
    expect(await kiln(['tenants', 'create', 'cli-co', '--description', 'from the shell'], ADMIN)).toMatchObject({ code: 0 });
    const made = await kiln(['keys', 'create', 'cli-co', '--scopes', 'read,sessions'], ADMIN);
    expect(made.code).toBe(0);
    const key = JSON.parse(made.stdout) as { key: string; keyId: string; scopes: string[] };
    expect(key.scopes).toEqual(['read', 'sessions']);
    expect((await k.call('GET', '/api/v1/sessions', undefined, as(key.key))).status).toBe(200);
    const listed = await kiln(['keys', 'list', 'cli-co'], ADMIN);
    expect(listed.stdout).toContain(key.keyId);
    expect(listed.stdout).not.toContain(key.key);
    const refused = await kiln(['tenants', 'list'], ALPHA);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('403 Forbidden');
    expect((await kiln(['keys', 'delete', 'cli-co'], ADMIN)).code).toBe(2);
    expect((await kiln(['keys', 'delete', 'cli-co', key.keyId], ADMIN)).code).toBe(0);
    expect((await k.call('GET', '/api/v1/sessions', undefined, as(key.key))).status).toBe(401);
    expect((await kiln(['tenants', 'delete', 'cli-co'], ADMIN)).code).toBe(0);
  });
});
