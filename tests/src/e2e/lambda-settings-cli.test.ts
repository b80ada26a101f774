import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { awsCli } from '../support/aws-cli.js';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { makeZip } from '../support/zip.js';

// Reserved concurrency, account settings, tags, event invoke configs and version listing with the
// AWS CLI (botocore parses every answer with Lambda's own model), as a user moving from AWS types them.
const KEY = 'cli-settings-key-0123456789';

let k: TestKiln;
let home: string;
beforeAll(async () => {
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 0 } }, python: null, shell: null, provided: null }, env: { KILN_API_KEYS: `cli:${KEY}`, KILN_QUOTA_EXECUTIONS: '50' } });
  home = mkdtempSync(join(tmpdir(), 'kiln-aws-cli-'));
});
afterAll(async () => {
  rmSync(home, { recursive: true, force: true });
  await k?.stop();
});

let cli: ((...args: string[]) => Promise<Record<string, unknown>>) | undefined;
/** One CLI process per command (each takes a few seconds to start: the test's time goes there). */
async function aws(...args: string[]): Promise<Record<string, any>> {
  cli ??= await awsCli(k.url, { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, AWS_ACCESS_KEY_ID: 'any', AWS_SECRET_ACCESS_KEY: KEY, AWS_DEFAULT_REGION: 'us-east-1' });
  return cli(...args);
}

describe('per-function settings with the AWS CLI', () => {
  it('put-/get-/delete-function-concurrency, get-account-settings, tag-resource/list-tags/untag-resource, event invoke configs, list-versions-by-function', { timeout: 180_000 }, async () => {
    const zip = join(home, 'fn.zip');
    writeFileSync(zip, makeZip([{ path: 'index.js', content: 'exports.handler = async () => 1;' }]));
    const made = await aws('create-function', '--function-name', 'cli-settings', '--runtime', 'nodejs20.x', '--role', 'arn:aws:iam::123456789012:role/x', '--handler', 'index.handler', '--zip-file', `fileb://${zip}`, '--tags', 'team=core');
    expect((await aws('list-tags', '--resource', made.FunctionArn)).Tags).toEqual({ team: 'core' });

    expect(await aws('put-function-concurrency', '--function-name', 'cli-settings', '--reserved-concurrent-executions', '4')).toEqual({ ReservedConcurrentExecutions: 4 });
    expect(await aws('get-function-concurrency', '--function-name', 'cli-settings')).toEqual({ ReservedConcurrentExecutions: 4 });
    const account = await aws('get-account-settings');
    expect(account.AccountLimit).toMatchObject({ ConcurrentExecutions: 50, UnreservedConcurrentExecutions: 46 });
    expect(account.AccountUsage.FunctionCount).toBe(1);
    await aws('delete-function-concurrency', '--function-name', 'cli-settings');
    expect(await aws('get-function-concurrency', '--function-name', 'cli-settings')).toEqual({});

    await aws('tag-resource', '--resource', made.FunctionArn, '--tags', 'env=prod');
    await aws('untag-resource', '--resource', made.FunctionArn, '--tag-keys', 'team');
    expect((await aws('get-function', '--function-name', 'cli-settings')).Tags).toEqual({ env: 'prod' });

    const eic = await aws('put-function-event-invoke-config', '--function-name', 'cli-settings', '--maximum-retry-attempts', '0', '--maximum-event-age-in-seconds', '300');
    expect(eic).toMatchObject({ FunctionArn: `${made.FunctionArn}:$LATEST`, MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 300 });
    expect(typeof eic.LastModified).toBe('string');
    expect((await aws('update-function-event-invoke-config', '--function-name', 'cli-settings', '--maximum-retry-attempts', '1')).MaximumEventAgeInSeconds).toBe(300);
    expect((await aws('list-function-event-invoke-configs', '--function-name', 'cli-settings')).FunctionEventInvokeConfigs).toHaveLength(1);
    await aws('delete-function-event-invoke-config', '--function-name', 'cli-settings');
    await expect(aws('get-function-event-invoke-config', '--function-name', 'cli-settings')).rejects.toThrow(/ResourceNotFoundException/);

    await aws('publish-version', '--function-name', 'cli-settings');
    expect((await aws('list-versions-by-function', '--function-name', 'cli-settings')).Versions.map((v: { Version: string }) => v.Version)).toEqual(['$LATEST', '1']);
    expect((await aws('list-functions', '--function-version', 'ALL')).Functions.map((v: { Version: string }) => v.Version)).toEqual(['$LATEST', '1']);
    await aws('delete-function', '--function-name', 'cli-settings');
  });
});
