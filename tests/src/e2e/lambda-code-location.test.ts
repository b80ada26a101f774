import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreateFunctionCommand, GetFunctionCommand, LambdaClient, UpdateFunctionCodeCommand } from '@aws-sdk/client-lambda';
import { readZip } from '@kiln/control-plane/functions/zip';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { makeZip } from '../support/zip.js';

const KEY = 'codeloc-alpha-key-0123456789abcd';

/** GetFunction's Code.Location downloads the version's zip, without a key, as Lambda's presigned URL does. */
describe('GetFunction Code.Location', () => {
  let k: TestKiln;
  let lambda: LambdaClient;
  beforeAll(async () => {
    k = await startTestKiln({ env: { KILN_API_KEYS: `alpha:${KEY}` } });
    lambda = new LambdaClient({ endpoint: k.url, region: 'us-east-1', credentials: { accessKeyId: 'any', secretAccessKey: KEY }, maxAttempts: 1 });
  });
  afterAll(async () => {
    lambda?.destroy();
    await k?.stop();
  });

  it('downloads the zip of the version it was given for, and nothing else', async () => {
    const v1 = [{ path: 'index.js', content: 'exports.handler = async () => "v1";' }, { path: 'lib/util.js', content: 'module.exports = 1;' }];
    await lambda.send(new CreateFunctionCommand({ FunctionName: 'located', Runtime: 'nodejs20.x', Role: 'r', Handler: 'index.handler', Code: { ZipFile: makeZip(v1) } }));
    const first = await lambda.send(new GetFunctionCommand({ FunctionName: 'located' }));
    const link = first.Code?.Location ?? '';
    expect(link).toMatch(/\/api\/v1\/function-code\/[\w-]+\.[0-9a-f]{64}$/);
    await lambda.send(new UpdateFunctionCodeCommand({ FunctionName: 'located', ZipFile: makeZip([{ path: 'index.js', content: 'exports.handler = async () => "v2";' }]) }));
    // No key: the signed link is the credential, and it still gives the code it was made for.
    const res = await fetch(link);
    expect([res.status, res.headers.get('content-type')]).toEqual([200, 'application/zip']);
    const entries = readZip(Buffer.from(await res.arrayBuffer()));
    expect(entries.map((e) => [e.path, e.content.toString()])).toEqual(v1.map((f) => [f.path, f.content]));
    // Tampered or made up: 403 with a code; any other path needs a key as before.
    const tampered = link.replace(/.$/, (ch) => (ch === '0' ? '1' : '0'));
    const refused = await fetch(tampered);
    expect([refused.status, ((await refused.json()) as { error: { code: string } }).error.code]).toEqual([403, 'CodeLinkRefused']);
    expect((await fetch(`${k.url}/api/v1/function-code/nonsense`)).status).toBe(403);
    expect((await fetch(`${k.url}/api/v1/functions/located`)).status).toBe(401);
  });
});
