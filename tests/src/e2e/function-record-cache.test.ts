import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { CreateAliasCommand, DeleteFunctionCommand, InvokeCommand, LambdaClient, PublishVersionCommand, ResourceNotFoundException, UpdateAliasCommand, UpdateFunctionCodeCommand, UpdateFunctionConfigurationCommand } from '@aws-sdk/client-lambda';
import type { Kiln } from '@kiln/control-plane/server';
import { testDirs } from '../support/kiln.js';
import { call, removeDeployment, startReplica, until } from '../support/faults.js';
import { makeZip } from '../support/zip.js';

/**
 * Invocations read the function's record through a cache that Redis invalidates (CLIENT
 * TRACKING, redis/tracked-reads.ts). What must hold: a replica that wrote a change runs it on
 * the very next invocation, and every other replica runs it as soon as Redis's invalidation
 * reaches it, then never the old record again; a deleted function stops running everywhere.
 */
describe('function records cached by the replicas that invoke them', () => {
  const prefix = `t${randomBytes(4).toString('hex')}`;
  const dirs = testDirs({ nodejs: { pool: { minIdle: 1, maxSandboxes: 4, sandboxesPerExecutor: 4 } }, python: null, shell: null, provided: null });
  const redis = new Redis({ path: inject('redisSocket') });
  let a: Kiln | undefined;
  let b: Kiln | undefined;
  const clients: LambdaClient[] = [];
  const lambda = (k: Kiln): LambdaClient => {
    const c = new LambdaClient({ endpoint: k.url, region: 'us-east-1', credentials: { accessKeyId: 'kiln', secretAccessKey: 'kiln' }, maxAttempts: 1 });
    clients.push(c);
    return c;
  };
  afterAll(async () => {
    for (const c of clients) c.destroy();
    await removeDeployment(prefix, dirs, redis, async () => {
      await a?.stop();
      await b?.stop();
    });
  });

  const source = (tag: string): string => `exports.handler = async () => ({ code: ${JSON.stringify(tag)}, env: process.env.TAG ?? null });`;
  const invoke = async (client: LambdaClient, name: string, qualifier?: string): Promise<{ code: string; env: string | null }> => {
    const out = await client.send(new InvokeCommand({ FunctionName: name, Payload: Buffer.from('{}'), ...(qualifier ? { Qualifier: qualifier } : {}) }));
    return JSON.parse(Buffer.from(out.Payload ?? new Uint8Array()).toString()) as { code: string; env: string | null };
  };

  it('runs a change on the replica that made it at once, on the others once Redis says so, and never the old one after', { timeout: 120_000 }, async () => {
    a = await startReplica(prefix, dirs);
    b = await startReplica(prefix, dirs);
    const [onA, onB] = [lambda(a), lambda(b)];
    const name = `cached-${randomBytes(3).toString('hex')}`;
    const created = await call(a.url, 'POST', '/api/v1/functions', { name, runtime: 'nodejs20.x', code: { source: source('v1') } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    // B reads the record (and keeps it); twice, so the second comes from its cache.
    expect(await invoke(onB, name)).toEqual({ code: 'v1', env: null });
    expect(await invoke(onB, name)).toEqual({ code: 'v1', env: null });

    // A changes the code: A runs it next, B as soon as its invalidation arrives, then only it.
    await onA.send(new UpdateFunctionCodeCommand({ FunctionName: name, ZipFile: makeZip([{ path: 'index.js', content: source('v2') }]) }));
    expect((await invoke(onA, name)).code).toBe('v2');
    await until('B to run the new code', async () => (await invoke(onB, name)).code === 'v2', 10_000);
    for (let i = 0; i < 10; i++) expect((await invoke(onB, name)).code).toBe('v2');

    // B changes the configuration: B's very next invocation has it (no wait), and A's soon after.
    await onB.send(new UpdateFunctionConfigurationCommand({ FunctionName: name, Environment: { Variables: { TAG: 'from-b' } } }));
    expect(await invoke(onB, name)).toEqual({ code: 'v2', env: 'from-b' });
    await until('A to run the new configuration', async () => (await invoke(onA, name)).env === 'from-b', 10_000);

    // An alias moved by A from version 1 to version 2: B follows it.
    const v1 = await onA.send(new PublishVersionCommand({ FunctionName: name }));
    await onA.send(new UpdateFunctionCodeCommand({ FunctionName: name, ZipFile: makeZip([{ path: 'index.js', content: source('v4') }]) }));
    const v2 = await onA.send(new PublishVersionCommand({ FunctionName: name }));
    await onA.send(new CreateAliasCommand({ FunctionName: name, Name: 'live', FunctionVersion: v1.Version }));
    expect((await invoke(onB, name, 'live')).code).toBe('v2');
    expect((await invoke(onB, name, 'live')).code).toBe('v2');
    await onA.send(new UpdateAliasCommand({ FunctionName: name, Name: 'live', FunctionVersion: v2.Version }));
    expect((await invoke(onA, name, 'live')).code).toBe('v4');
    await until('B to follow the alias', async () => (await invoke(onB, name, 'live')).code === 'v4', 10_000);

    // A deletes it: B stops running it.
    await onA.send(new DeleteFunctionCommand({ FunctionName: name }));
    await expect(invoke(onA, name)).rejects.toBeInstanceOf(ResourceNotFoundException);
    await until(
      'B to refuse the deleted function',
      async () =>
        invoke(onB, name).then(
          () => false,
          (err: unknown) => err instanceof ResourceNotFoundException,
        ),
      10_000,
    );
    // A function of the same name made again is the new one everywhere.
    expect((await call(a.url, 'POST', '/api/v1/functions', { name, runtime: 'nodejs20.x', code: { source: source('v3') } })).status).toBe(201);
    await until('B to run the new function', async () => (await invoke(onB, name).catch(() => ({ code: '' }))).code === 'v3', 10_000);
  });
});
