import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreateFunctionCommand, DeleteFunctionCommand, GetFunctionConfigurationCommand, InvalidParameterValueException, InvokeCommand, LambdaClient, UpdateFunctionConfigurationCommand, waitUntilFunctionUpdatedV2 } from '@aws-sdk/client-lambda';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { makeZip } from '../support/zip.js';

/**
 * EphemeralStorage.Size through the official SDK: /tmp of a function's sandbox has the size the
 * function asks for (default 512 MB, where the template's sandbox boots with less), writing within
 * it succeeds and past it fails with ENOSPC; the operator's KILN_LAMBDA_MAX_EPHEMERAL_MB bounds it;
 * GetFunctionConfiguration reports it. Every function is deleted in afterAll.
 */
let k: TestKiln;
let lambda: LambdaClient;
const made: string[] = [];
const MAX = 1024;

beforeAll(async () => {
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 1, maxSandboxes: 3 } }, python: null, shell: null, provided: null }, env: { KILN_LAMBDA_MAX_EPHEMERAL_MB: String(MAX) } });
  lambda = new LambdaClient({ endpoint: k.url, region: 'us-east-1', credentials: { accessKeyId: 'kiln', secretAccessKey: 'kiln' }, maxAttempts: 1 });
}, 120_000);
afterAll(async () => {
  for (const name of made) await lambda.send(new DeleteFunctionCommand({ FunctionName: name })).catch(() => undefined);
  lambda?.destroy();
  await k?.stop();
});

/**
 * Writes `mb` MB to /tmp, 1 MB at a time, in files of 200 MB (one file stays bounded by the
 * template's disk size), then removes them; answers what happened and how /tmp is mounted.
 */
const WRITER = `
const fs = require('node:fs');
exports.handler = async (event) => {
  const chunk = Buffer.alloc(1024 * 1024, 7);
  const paths = [];
  let written = 0;
  let code = null;
  let fd;
  try {
    for (; written < event.mb; written++) {
      if (written % 200 === 0) {
        if (fd !== undefined) fs.closeSync(fd);
        paths.push('/tmp/fill-' + Date.now() + '-' + written);
        fd = fs.openSync(paths[paths.length - 1], 'w');
      }
      fs.writeSync(fd, chunk);
    }
  } catch (err) {
    code = err.code;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
    for (const p of paths) fs.unlinkSync(p);
  }
  const mount = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\\n').find((l) => l.split(' ')[4] === '/tmp');
  return { written, code, mount };
};
`;

async function create(name: string, extra: Record<string, unknown> = {}) {
  made.push(name);
  return lambda.send(
    new CreateFunctionCommand({ FunctionName: name, Runtime: 'nodejs20.x', Role: 'arn:aws:iam::123456789012:role/x', Handler: 'index.handler', MemorySize: 1024, Timeout: 60, Code: { ZipFile: makeZip([{ path: 'index.js', content: WRITER }]) }, ...extra }),
  );
}
async function write(name: string, mb: number): Promise<{ written: number; code: string | null; mount: string }> {
  const res = await lambda.send(new InvokeCommand({ FunctionName: name, Payload: Buffer.from(JSON.stringify({ mb })) }));
  const text = Buffer.from(res.Payload ?? []).toString('utf8');
  expect(res.FunctionError, text).toBeUndefined();
  return JSON.parse(text) as { written: number; code: string | null; mount: string };
}
const errorOf = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e);

describe('EphemeralStorage', () => {
  it('gives /tmp the default 512 MB: 480 MB fit, 530 MB fail with ENOSPC', async () => {
    const fn = await create('eph-default');
    expect(fn.EphemeralStorage).toEqual({ Size: 512 });
    expect(await write('eph-default', 480)).toMatchObject({ written: 480, code: null });
    const past = await write('eph-default', 530);
    expect(past.code).toBe('ENOSPC');
    expect(past.written).toBeGreaterThanOrEqual(500);
    expect(past.written).toBeLessThanOrEqual(512);
    // Resized, still nosuid and nodev.
    expect(past.mount).toMatch(/\bnosuid\b/);
    expect(past.mount).toMatch(/\bnodev\b/);
  }, 120_000);

  it('honours a larger Size, reported by GetFunctionConfiguration, and an update of it', async () => {
    const fn = await create('eph-large', { EphemeralStorage: { Size: 700 } });
    expect(fn.EphemeralStorage).toEqual({ Size: 700 });
    expect((await lambda.send(new GetFunctionConfigurationCommand({ FunctionName: 'eph-large' }))).EphemeralStorage).toEqual({ Size: 700 });
    expect(await write('eph-large', 650)).toMatchObject({ written: 650, code: null });
    expect((await write('eph-large', 720)).code).toBe('ENOSPC');
    // Down to 600: the next invocation loads the new configuration in a fresh sandbox.
    await lambda.send(new UpdateFunctionConfigurationCommand({ FunctionName: 'eph-large', EphemeralStorage: { Size: 600 } }));
    await waitUntilFunctionUpdatedV2({ client: lambda, maxWaitTime: 30 }, { FunctionName: 'eph-large' });
    expect((await lambda.send(new GetFunctionConfigurationCommand({ FunctionName: 'eph-large' }))).EphemeralStorage).toEqual({ Size: 600 });
    // Kiln's REST API shows and takes it as ephemeralStorageMB.
    expect((await k.call('GET', '/api/v1/functions/eph-large')).body).toMatchObject({ ephemeralStorageMB: 600 });
    expect((await k.call('PUT', '/api/v1/functions/eph-large', { ephemeralStorageMB: MAX + 1 })).status).toBe(400);
    const past = await write('eph-large', 650);
    expect(past.code).toBe('ENOSPC');
    expect(past.written).toBeLessThanOrEqual(600);
    expect(past.written).toBeGreaterThan(580);
  }, 120_000);

  it("refuses sizes outside Lambda's range and past the operator's maximum", async () => {
    for (const Size of [511, MAX + 1, 10240, 10241, 600.5]) {
      const err = await errorOf(create(`eph-bad-${String(Size).replace('.', '-')}`, { EphemeralStorage: { Size } }));
      expect(err, String(Size)).toBeInstanceOf(InvalidParameterValueException);
      expect((err as Error).message).toMatch(/EphemeralStorage\.Size/);
    }
    await create('eph-update');
    expect(await errorOf(lambda.send(new UpdateFunctionConfigurationCommand({ FunctionName: 'eph-update', EphemeralStorage: { Size: MAX + 1 } })))).toBeInstanceOf(InvalidParameterValueException);
    expect((await lambda.send(new GetFunctionConfigurationCommand({ FunctionName: 'eph-update' }))).EphemeralStorage).toEqual({ Size: 512 });
  }, 60_000);
});
