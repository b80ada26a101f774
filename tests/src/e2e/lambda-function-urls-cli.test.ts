import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreateFunctionCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { awsCli } from '../support/aws-cli.js';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { makeZip } from '../support/zip.js';

// The AWS CLI's function URL commands against Kiln, as a user moving from AWS types them.
const KEY = 'cli-url-key-0123456789abcdef';

let k: TestKiln;
let home: string;
beforeAll(async () => {
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 1 } }, python: null, shell: null, provided: null }, env: { KILN_API_KEYS: `cli:${KEY}` } });
  home = mkdtempSync(join(tmpdir(), 'kiln-aws-cli-'));
});
afterAll(async () => {
  rmSync(home, { recursive: true, force: true });
  await k?.stop();
});

async function aws(...args: string[]): Promise<Record<string, any>> {
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, AWS_ACCESS_KEY_ID: 'any', AWS_SECRET_ACCESS_KEY: KEY, AWS_DEFAULT_REGION: 'us-east-1' };
  return (await awsCli(k.url, env))(...args);
}

describe('function URLs with the AWS CLI', () => {
  it('create-, get-, update-, list- and delete-function-url-config, and the URL answers', async () => {
    const lambda = new LambdaClient({ endpoint: k.url, region: 'us-east-1', credentials: { accessKeyId: 'any', secretAccessKey: KEY }, maxAttempts: 1 });
    const code = 'exports.handler = async (e) => ({ statusCode: 200, headers: { "content-type": "text/plain" }, body: e.requestContext.http.method + " " + e.rawPath });';
    await lambda.send(new CreateFunctionCommand({ FunctionName: 'cli-url', Runtime: 'nodejs20.x', Role: 'arn:aws:iam::123456789012:role/x', Handler: 'index.handler', Code: { ZipFile: makeZip([{ path: 'index.js', content: code }]) } }));
    lambda.destroy();

    const made = await aws('create-function-url-config', '--function-name', 'cli-url', '--auth-type', 'NONE', '--cors', 'AllowOrigins=https://app.example,MaxAge=30');
    expect(made.FunctionUrl).toMatch(/\/lambda-url\/[a-z0-9]{32}\/$/);
    expect(made.Cors).toEqual({ AllowOrigins: ['https://app.example'], MaxAge: 30 });
    const res = await fetch(`${made.FunctionUrl}from/cli`, { method: 'PUT' });
    expect([res.status, await res.text()]).toEqual([200, 'PUT /from/cli']);

    expect((await aws('get-function-url-config', '--function-name', 'cli-url')).FunctionUrl).toBe(made.FunctionUrl);
    expect((await aws('update-function-url-config', '--function-name', 'cli-url', '--auth-type', 'AWS_IAM')).AuthType).toBe('AWS_IAM');
    expect((await fetch(`${made.FunctionUrl}x`)).status).toBe(403);
    const listed = await aws('list-function-url-configs', '--function-name', 'cli-url');
    expect(listed.FunctionUrlConfigs.map((c: { AuthType: string }) => c.AuthType)).toEqual(['AWS_IAM']);
    await expect(aws('create-function-url-config', '--function-name', 'cli-url', '--auth-type', 'NONE')).rejects.toThrow(/ResourceConflictException/);

    await aws('delete-function-url-config', '--function-name', 'cli-url');
    await expect(aws('get-function-url-config', '--function-name', 'cli-url')).rejects.toThrow(/ResourceNotFoundException/);
    expect((await fetch(`${made.FunctionUrl}x`)).status).toBe(404);
    // Seven AWS CLI runs: each starts Python and botocore (1–2 s quiet, past 8 s under the full
    // suite's load on 2 cores; 60 s was met once).
  }, 180_000);
});
