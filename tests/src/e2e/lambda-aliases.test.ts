import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateAliasCommand,
  CreateFunctionCommand,
  CreateFunctionUrlConfigCommand,
  DeleteAliasCommand,
  DeleteFunctionCommand,
  GetAliasCommand,
  GetFunctionCommand,
  GetFunctionConfigurationCommand,
  GetFunctionUrlConfigCommand,
  InvalidParameterValueException,
  InvokeCommand,
  LambdaClient,
  ListAliasesCommand,
  PreconditionFailedException,
  ResourceConflictException,
  ResourceNotFoundException,
  UpdateAliasCommand,
  UpdateFunctionCodeCommand,
} from '@aws-sdk/client-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { awsCli } from '../support/aws-cli.js';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { makeZip } from '../support/zip.js';

/**
 * Aliases as the AWS SDK's Lambda client (and the AWS CLI) use them: every operation, paging,
 * invoking by alias in each of Lambda's three spellings, weighted routing, and the errors the
 * SDK maps to its exception classes. Tenants alpha (who owns everything here) and beta (who
 * must find none of it), and an administrator.
 */
const ALPHA = 'aliases-alpha-key-0123456789ab';
const BETA = 'aliases-beta-key-0123456789abc';
const ADMIN = 'aliases-admin-key-0123456789ab';
const FN = 'al-fn';
const ARN = `arn:aws:lambda:us-east-1:alpha:function:${FN}`;

let k: TestKiln;
const clients: LambdaClient[] = [];
let alpha: LambdaClient;
beforeAll(async () => {
  k = await startTestKiln({
    templates: { nodejs: { pool: { minIdle: 1, maxSandboxes: 4 } }, python: null, shell: null, provided: null },
    env: { KILN_API_KEYS: `alpha:${ALPHA},beta:${BETA}`, KILN_ADMIN_API_KEYS: ADMIN },
  });
  alpha = lambdaOf(ALPHA);
  // Versions 1 and 2 are published with tags v1 and v2; $LATEST runs v3.
  await alpha.send(new CreateFunctionCommand({ FunctionName: FN, Runtime: 'nodejs20.x', Role: 'arn:aws:iam::123456789012:role/x', Handler: 'index.handler', Code: { ZipFile: zipOf('v1') }, Publish: true }));
  await alpha.send(new UpdateFunctionCodeCommand({ FunctionName: FN, ZipFile: zipOf('v2'), Publish: true }));
  await alpha.send(new UpdateFunctionCodeCommand({ FunctionName: FN, ZipFile: zipOf('v3') }));
});
afterAll(async () => {
  for (const c of clients) c.destroy();
  await k?.stop();
});

function lambdaOf(key: string): LambdaClient {
  const c = new LambdaClient({ endpoint: k.url, region: 'us-east-1', credentials: { accessKeyId: 'any', secretAccessKey: key }, maxAttempts: 1 });
  clients.push(c);
  return c;
}

/** The handler tells which code ran, which version Lambda's context says, and the ARN invoked. */
const zipOf = (tag: string) =>
  makeZip([{ path: 'index.js', content: `exports.handler = async (event, ctx) => ({ tag: '${tag}', version: ctx.functionVersion, arn: ctx.invokedFunctionArn });` }]);

const decode = (p: Uint8Array | undefined) => JSON.parse(Buffer.from(p ?? []).toString('utf8')) as { tag: string; version: string; arn: string };
const invoke = (FunctionName: string, Qualifier?: string, client = alpha) => client.send(new InvokeCommand({ FunctionName, Payload: Buffer.from('{}'), ...(Qualifier ? { Qualifier } : {}) }));

describe('alias operations through the AWS SDK', () => {
  it('creates, gets, updates and deletes an alias, with RevisionId checks', async () => {
    const made = await alpha.send(new CreateAliasCommand({ FunctionName: FN, Name: 'crud', FunctionVersion: '1', Description: 'first' }));
    expect(made).toMatchObject({ AliasArn: `${ARN}:crud`, Name: 'crud', FunctionVersion: '1', Description: 'first' });
    expect(made.RevisionId).toMatch(/^[0-9a-f-]{36}$/);
    const got = await alpha.send(new GetAliasCommand({ FunctionName: FN, Name: 'crud' }));
    expect(got).toMatchObject({ AliasArn: `${ARN}:crud`, FunctionVersion: '1', RevisionId: made.RevisionId });

    // A stale RevisionId is refused and changes nothing; the current one is accepted.
    await expect(alpha.send(new UpdateAliasCommand({ FunctionName: FN, Name: 'crud', FunctionVersion: '2', RevisionId: '00000000-0000-0000-0000-000000000000' }))).rejects.toBeInstanceOf(PreconditionFailedException);
    expect((await alpha.send(new GetAliasCommand({ FunctionName: FN, Name: 'crud' }))).FunctionVersion).toBe('1');
    const updated = await alpha.send(new UpdateAliasCommand({ FunctionName: FN, Name: 'crud', FunctionVersion: '2', RevisionId: made.RevisionId }));
    expect(updated).toMatchObject({ FunctionVersion: '2', Description: 'first' });
    expect(updated.RevisionId).not.toBe(made.RevisionId);
    await expect(alpha.send(new UpdateAliasCommand({ FunctionName: FN, Name: 'crud', Description: 'again', RevisionId: made.RevisionId }))).rejects.toBeInstanceOf(PreconditionFailedException);
    // An alias may point at $LATEST.
    expect((await alpha.send(new UpdateAliasCommand({ FunctionName: FN, Name: 'crud', FunctionVersion: '$LATEST' }))).FunctionVersion).toBe('$LATEST');

    await alpha.send(new DeleteAliasCommand({ FunctionName: FN, Name: 'crud' }));
    await expect(alpha.send(new GetAliasCommand({ FunctionName: FN, Name: 'crud' }))).rejects.toBeInstanceOf(ResourceNotFoundException);
    await expect(alpha.send(new DeleteAliasCommand({ FunctionName: FN, Name: 'crud' }))).rejects.toBeInstanceOf(ResourceNotFoundException);
  });

  it('answers with the exception classes AWS uses', async () => {
    await alpha.send(new CreateAliasCommand({ FunctionName: FN, Name: 'errs', FunctionVersion: '1' }));
    const create = (Name: string, FunctionVersion: string, RoutingConfig?: { AdditionalVersionWeights: Record<string, number> }) =>
      alpha.send(new CreateAliasCommand({ FunctionName: FN, Name, FunctionVersion, ...(RoutingConfig ? { RoutingConfig } : {}) }));
    await expect(create('errs', '2')).rejects.toBeInstanceOf(ResourceConflictException);
    await expect(create('nine', '9')).rejects.toBeInstanceOf(ResourceNotFoundException);
    await expect(alpha.send(new CreateAliasCommand({ FunctionName: 'no-such-fn', Name: 'x', FunctionVersion: '1' }))).rejects.toBeInstanceOf(ResourceNotFoundException);
    await expect(alpha.send(new GetAliasCommand({ FunctionName: FN, Name: 'never-made' }))).rejects.toBeInstanceOf(ResourceNotFoundException);
    await expect(alpha.send(new UpdateAliasCommand({ FunctionName: FN, Name: 'never-made', FunctionVersion: '1' }))).rejects.toBeInstanceOf(ResourceNotFoundException);
    // Names: not only digits, no other characters. Versions: $LATEST or a number.
    for (const bad of ['123', 'has.dot', 'has space']) await expect(create(bad, '1')).rejects.toBeInstanceOf(InvalidParameterValueException);
    await expect(create('badver', 'latest')).rejects.toBeInstanceOf(InvalidParameterValueException);
    // Routing: only between two published versions, one weight in 0..1.
    await expect(create('r1', '$LATEST', { AdditionalVersionWeights: { '1': 0.5 } })).rejects.toBeInstanceOf(InvalidParameterValueException);
    await expect(create('r2', '1', { AdditionalVersionWeights: { $LATEST: 0.5 } })).rejects.toBeInstanceOf(InvalidParameterValueException);
    await expect(create('r3', '1', { AdditionalVersionWeights: { '2': 1.5 } })).rejects.toBeInstanceOf(InvalidParameterValueException);
    await expect(create('r4', '1', { AdditionalVersionWeights: { '1': 0.5 } })).rejects.toBeInstanceOf(InvalidParameterValueException);
    await expect(create('r5', '1', { AdditionalVersionWeights: { '7': 0.5 } })).rejects.toBeInstanceOf(ResourceNotFoundException);
    await expect(alpha.send(new UpdateAliasCommand({ FunctionName: FN, Name: 'errs', RoutingConfig: { AdditionalVersionWeights: { '2': -0.1 } } }))).rejects.toBeInstanceOf(InvalidParameterValueException);
    // A version an alias uses (here: routes to) cannot be deleted; once unused, it can.
    await alpha.send(new UpdateAliasCommand({ FunctionName: FN, Name: 'errs', RoutingConfig: { AdditionalVersionWeights: { '2': 0.5 } } }));
    await expect(alpha.send(new DeleteFunctionCommand({ FunctionName: FN, Qualifier: '2' }))).rejects.toBeInstanceOf(ResourceConflictException);
    await expect(alpha.send(new DeleteFunctionCommand({ FunctionName: FN, Qualifier: '1' }))).rejects.toBeInstanceOf(ResourceConflictException);
    await alpha.send(new DeleteAliasCommand({ FunctionName: FN, Name: 'errs' }));
  });

  it('lists aliases in name order, page by page, and by the version they run', async () => {
    const made = ['p-a', 'p-b', 'p-c', 'p-d', 'p-e'];
    for (const [i, Name] of made.entries()) await alpha.send(new CreateAliasCommand({ FunctionName: FN, Name, FunctionVersion: i % 2 ? '2' : '1' }));
    const seen: string[] = [];
    let Marker: string | undefined;
    let pages = 0;
    do {
      const page = await alpha.send(new ListAliasesCommand({ FunctionName: FN, MaxItems: 2, ...(Marker ? { Marker } : {}) }));
      expect(page.Aliases?.length).toBeLessThanOrEqual(2);
      seen.push(...(page.Aliases ?? []).map((a) => a.Name ?? ''));
      Marker = page.NextMarker;
      pages++;
    } while (Marker);
    expect(seen.filter((n) => n.startsWith('p-'))).toEqual(made);
    expect(pages).toBeGreaterThanOrEqual(3);
    const onTwo = await alpha.send(new ListAliasesCommand({ FunctionName: FN, FunctionVersion: '2' }));
    expect(onTwo.Aliases?.map((a) => [a.Name, a.AliasArn])).toEqual([
      ['p-b', `${ARN}:p-b`],
      ['p-d', `${ARN}:p-d`],
    ]);
    for (const Name of made) await alpha.send(new DeleteAliasCommand({ FunctionName: FN, Name }));
  });
});

describe('invoking by alias', () => {
  it('runs the alias\'s version by Qualifier, name:alias and alias ARN, and GetFunction shows it', async () => {
    await alpha.send(new CreateAliasCommand({ FunctionName: FN, Name: 'live', FunctionVersion: '1' }));
    await alpha.send(new CreateAliasCommand({ FunctionName: FN, Name: 'dev', FunctionVersion: '$LATEST' }));
    for (const [name, qualifier] of [
      [FN, 'live'],
      [`${FN}:live`, undefined],
      [`${ARN}:live`, undefined],
    ] as const) {
      const out = await invoke(name, qualifier);
      expect([out.StatusCode, out.FunctionError, out.ExecutedVersion]).toEqual([200, undefined, '1']);
      expect(decode(out.Payload)).toEqual({ tag: 'v1', version: '1', arn: `${ARN}:live` });
    }
    const dev = await invoke(`${FN}:dev`);
    expect(dev.ExecutedVersion).toBe('$LATEST');
    expect(decode(dev.Payload)).toEqual({ tag: 'v3', version: '$LATEST', arn: `${ARN}:dev` });
    // Repointing the alias takes effect on the next invocation.
    await alpha.send(new UpdateAliasCommand({ FunctionName: FN, Name: 'live', FunctionVersion: '2' }));
    const moved = await invoke(FN, 'live');
    expect([moved.ExecutedVersion, decode(moved.Payload).tag]).toEqual(['2', 'v2']);

    const conf = await alpha.send(new GetFunctionConfigurationCommand({ FunctionName: FN, Qualifier: 'live' }));
    expect([conf.Version, conf.FunctionArn]).toEqual(['2', `${ARN}:live`]);
    const fn = await alpha.send(new GetFunctionCommand({ FunctionName: `${ARN}:live` }));
    expect([fn.Configuration?.Version, fn.Configuration?.FunctionArn]).toEqual(['2', `${ARN}:live`]);
    await expect(invoke(FN, 'gone')).rejects.toBeInstanceOf(ResourceNotFoundException);
    await expect(alpha.send(new GetFunctionCommand({ FunctionName: `${FN}:gone` }))).rejects.toBeInstanceOf(ResourceNotFoundException);
  });

  it('splits invocations between two versions by weight, and X-Amz-Executed-Version says which ran', async () => {
    await alpha.send(new CreateAliasCommand({ FunctionName: FN, Name: 'canary', FunctionVersion: '1', RoutingConfig: { AdditionalVersionWeights: { '2': 0.3 } } }));
    const got = await alpha.send(new GetAliasCommand({ FunctionName: FN, Name: 'canary' }));
    expect(got.RoutingConfig?.AdditionalVersionWeights).toEqual({ '2': 0.3 });
    const N = 200;
    const ran: Record<string, number> = {};
    for (let i = 0; i < N; i += 10) {
      const outs = await Promise.all(Array.from({ length: 10 }, () => invoke(FN, 'canary')));
      for (const out of outs) {
        const body = decode(out.Payload);
        // The header and the code that ran agree, every time.
        expect([out.ExecutedVersion, body.tag, body.arn]).toEqual([body.version, `v${body.version}`, `${ARN}:canary`]);
        ran[body.version] = (ran[body.version] ?? 0) + 1;
      }
    }
    expect(Object.keys(ran).sort()).toEqual(['1', '2']);
    // Binomial(200, 0.3): mean 60, sd 6.5; 30..90 is more than 4.5 sd either side.
    expect(ran['2']).toBeGreaterThanOrEqual(0.15 * N);
    expect(ran['2']).toBeLessThanOrEqual(0.45 * N);
    // Removing the routing sends everything to the alias's own version.
    await alpha.send(new UpdateAliasCommand({ FunctionName: FN, Name: 'canary', RoutingConfig: { AdditionalVersionWeights: {} } }));
    const outs = await Promise.all(Array.from({ length: 10 }, () => invoke(FN, 'canary')));
    expect(new Set(outs.map((o) => o.ExecutedVersion))).toEqual(new Set(['1']));
  });

  it('deleting the function deletes its aliases', async () => {
    const name = 'al-short-lived';
    const make = () => alpha.send(new CreateFunctionCommand({ FunctionName: name, Runtime: 'nodejs20.x', Role: 'x', Handler: 'index.handler', Code: { ZipFile: zipOf('s') }, Publish: true }));
    await make();
    await alpha.send(new CreateAliasCommand({ FunctionName: name, Name: 'stays', FunctionVersion: '1' }));
    await alpha.send(new DeleteFunctionCommand({ FunctionName: name }));
    await make();
    await expect(alpha.send(new GetAliasCommand({ FunctionName: name, Name: 'stays' }))).rejects.toBeInstanceOf(ResourceNotFoundException);
    expect((await alpha.send(new ListAliasesCommand({ FunctionName: name }))).Aliases).toEqual([]);
    await alpha.send(new DeleteFunctionCommand({ FunctionName: name }));
  });
});

describe('aliases and tenants', () => {
  it('another tenant finds none of alpha\'s aliases; an administrator reaches them by ARN and ?tenant=', async () => {
    const beta = lambdaOf(BETA);
    await alpha.send(new CreateAliasCommand({ FunctionName: FN, Name: 'private', FunctionVersion: '1' }));
    const before = await alpha.send(new GetAliasCommand({ FunctionName: FN, Name: 'private' }));
    for (const FunctionName of [FN, ARN, 'alpha:function:al-fn']) {
      const attempts = [
        () => beta.send(new GetAliasCommand({ FunctionName, Name: 'private' })),
        () => beta.send(new ListAliasesCommand({ FunctionName })),
        () => beta.send(new CreateAliasCommand({ FunctionName, Name: 'planted', FunctionVersion: '1' })),
        () => beta.send(new UpdateAliasCommand({ FunctionName, Name: 'private', FunctionVersion: '2' })),
        () => beta.send(new DeleteAliasCommand({ FunctionName, Name: 'private' })),
      ];
      for (const attempt of attempts) await expect(attempt()).rejects.toBeInstanceOf(ResourceNotFoundException);
    }
    for (const name of [`${FN}:private`, `${ARN}:private`]) {
      await expect(invoke(name, undefined, beta)).rejects.toBeInstanceOf(ResourceNotFoundException);
      await expect(beta.send(new GetFunctionCommand({ FunctionName: name }))).rejects.toBeInstanceOf(ResourceNotFoundException);
    }
    for (const path of [`/api/v1/functions/${FN}/aliases`, `/api/v1/functions/${FN}/aliases/private`, `/api/v1/functions/${FN}/aliases/private?tenant=alpha`]) {
      expect((await k.call('GET', path, undefined, { authorization: `Bearer ${BETA}` })).status, path).toBe(404);
    }
    expect(await alpha.send(new GetAliasCommand({ FunctionName: FN, Name: 'private' }))).toMatchObject({ FunctionVersion: '1', RevisionId: before.RevisionId });
    expect((await alpha.send(new ListAliasesCommand({ FunctionName: FN }))).Aliases?.map((a) => a.Name)).not.toContain('planted');

    const admin = lambdaOf(ADMIN);
    expect((await admin.send(new GetAliasCommand({ FunctionName: ARN, Name: 'private' }))).AliasArn).toBe(`${ARN}:private`);
    expect(decode((await invoke(`${ARN}:private`, undefined, admin)).Payload).tag).toBe('v1');
    const rest = await k.call('GET', `/api/v1/functions/${FN}/aliases/private?tenant=alpha`, undefined, { authorization: `Bearer ${ADMIN}` });
    expect(rest.body).toMatchObject({ name: 'private', arn: `${ARN}:private`, functionVersion: '1' });
  });
});

describe('the REST equivalents', () => {
  it('creates, lists, updates (RevisionId) and deletes an alias, and invokes by it', async () => {
    const as = { authorization: `Bearer ${ALPHA}` };
    const made = await k.call('POST', `/api/v1/functions/${FN}/aliases`, { name: 'rest', functionVersion: '2' }, as);
    expect([made.status, made.body.arn, made.body.functionVersion]).toEqual([201, `${ARN}:rest`, '2']);
    expect((await k.call('POST', `/api/v1/functions/${FN}/aliases`, { name: 'rest', functionVersion: '2' }, as)).body.error.code).toBe('AliasExists');
    const ran = await k.call('POST', `/api/v1/functions/${FN}/invocations?qualifier=rest`, {}, as);
    expect([ran.body.version, ran.body.result.tag]).toEqual(['2', 'v2']);
    const listed = await k.call('GET', `/api/v1/functions/${FN}/aliases?functionVersion=2`, undefined, as);
    expect(listed.body.aliases.map((a: { name: string }) => a.name)).toContain('rest');
    const stale = await k.call('PUT', `/api/v1/functions/${FN}/aliases/rest`, { functionVersion: '1', revisionId: 'stale' }, as);
    expect([stale.status, stale.body.error.code]).toEqual([412, 'PreconditionFailed']);
    const moved = await k.call('PUT', `/api/v1/functions/${FN}/aliases/rest`, { functionVersion: '1', additionalVersionWeights: { '2': 0.25 }, revisionId: made.body.revisionId }, as);
    expect([moved.status, moved.body.additionalVersionWeights]).toEqual([200, { '2': 0.25 }]);
    expect((await k.call('DELETE', `/api/v1/functions/${FN}/aliases/rest?revisionId=${made.body.revisionId}`, undefined, as)).status).toBe(412);
    expect((await k.call('DELETE', `/api/v1/functions/${FN}/aliases/rest?revisionId=${moved.body.revisionId}`, undefined, as)).status).toBe(204);
    expect((await k.call('GET', `/api/v1/functions/${FN}/aliases/rest`, undefined, as)).status).toBe(404);
  });
});

describe("an alias's function URL", () => {
  it('goes with the alias: an alias made again under the name does not bring the old URL back', async () => {
    await alpha.send(new CreateAliasCommand({ FunctionName: FN, Name: 'web', FunctionVersion: '2' }));
    const url = await alpha.send(new CreateFunctionUrlConfigCommand({ FunctionName: FN, Qualifier: 'web', AuthType: 'NONE' }));
    expect((await fetch(url.FunctionUrl!)).status).toBe(200);
    await alpha.send(new DeleteAliasCommand({ FunctionName: FN, Name: 'web' }));
    await expect(alpha.send(new GetFunctionUrlConfigCommand({ FunctionName: FN, Qualifier: 'web' }))).rejects.toBeInstanceOf(ResourceNotFoundException);
    await alpha.send(new CreateAliasCommand({ FunctionName: FN, Name: 'web', FunctionVersion: '1' }));
    expect((await fetch(url.FunctionUrl!)).status).toBe(404);
    await expect(alpha.send(new GetFunctionUrlConfigCommand({ FunctionName: FN, Qualifier: 'web' }))).rejects.toBeInstanceOf(ResourceNotFoundException);
    await alpha.send(new DeleteAliasCommand({ FunctionName: FN, Name: 'web' }));
  });
});

describe('the AWS CLI', () => {
  it('creates an alias and invokes the function by it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-aws-cli-'));
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, AWS_ACCESS_KEY_ID: 'any', AWS_SECRET_ACCESS_KEY: ALPHA, AWS_DEFAULT_REGION: 'us-east-1' };
    const aws = await awsCli(k.url, env);
    try {
      const made = await aws('create-alias', '--function-name', FN, '--name', 'cli', '--function-version', '2', '--description', 'from the cli');
      expect(made).toMatchObject({ AliasArn: `${ARN}:cli`, Name: 'cli', FunctionVersion: '2', Description: 'from the cli' });
      const out = join(dir, 'out.json');
      const res = await aws('invoke', '--function-name', `${FN}:cli`, '--payload', '{}', out);
      expect(res).toMatchObject({ StatusCode: 200, ExecutedVersion: '2' });
      expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual({ tag: 'v2', version: '2', arn: `${ARN}:cli` });
      expect((await aws('list-aliases', '--function-name', FN, '--function-version', '2')).Aliases).toEqual(expect.arrayContaining([expect.objectContaining({ Name: 'cli' })]));
      // Weighted routing as the README spells it for the CLI.
      const routed = await aws('update-alias', '--function-name', FN, '--name', 'cli', '--function-version', '1', '--routing-config', '{"AdditionalVersionWeights":{"2":0.1}}');
      expect(routed).toMatchObject({ FunctionVersion: '1', RoutingConfig: { AdditionalVersionWeights: { '2': 0.1 } } });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
