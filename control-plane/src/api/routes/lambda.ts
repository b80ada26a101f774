import { Hono, type Context } from 'hono';
import type { CodeLinks } from '../../functions/code-links.js';
import type { Redis } from 'ioredis';
import { bodyLimit } from 'hono/body-limit';
import { KilnError, ValidationError } from '../../errors.js';
import { SYNC_PAYLOAD_BYTES, type FunctionInvoker, type InvocationType } from '../../functions/invoker.js';
import { idempotencyKey } from '../../invocation/submit.js';
import { redisGuard } from '../redis-guard.js';
import { zipFromBase64, type CodeInput } from '../../functions/package.js';
import type { S3CodeSource } from '../../functions/s3-code.js';
import type { Principal } from '../../tenancy/principal.js';
import type { AliasService } from '../../functions/aliases.js';
import type { FunctionService } from '../../functions/service.js';
import { checkTags, type FunctionExtras } from '../../functions/settings.js';
import { lambdaError, lambdaErrorForCode, onLambdaError } from '../lambda/errors.js';
import type { AppEnv } from '../router.js';
import { lambdaAliasRoutes } from '../lambda/aliases.js';
import { CodeInputShape, ConfigInput, configuration, CreateInput, functionErrorPayload, lambdaTarget, maxItemsOf, parseBody, parseFunctionName, PublishInput, settingsOf } from '../lambda/shapes.js';

/** Largest management request (CreateFunction/UpdateFunctionCode): a 50 MB zip, base64 in JSON. */
const MAX_MANAGEMENT_BYTES = 70 * 1024 * 1024;
/** Lambda keeps the last 4 KB of the log for X-Amz-Log-Result. */
const LOG_TAIL_BYTES = 4096;
const INVOCATION_TYPES = ['RequestResponse', 'Event', 'DryRun'];
const BASE = '/2015-03-31/functions';
/**
 * Kiln's idempotency header for Event invocations (Lambda itself has none: X-Amz-Client-Context
 * is the handler's context, not a key). The same key for the same function version within the
 * result TTL returns the first invocation's request id and does not run it again.
 */
export const LAMBDA_IDEMPOTENCY_HEADER = 'X-Kiln-Idempotency-Key';

interface CodeShape {
  ZipFile?: string | undefined;
  S3Bucket?: string | undefined;
  S3Key?: string | undefined;
  S3ObjectVersion?: string | undefined;
  ImageUri?: string | undefined;
}

/** The zip of a CreateFunction / UpdateFunctionCode: inline (ZipFile) or read from S3 (functions/s3-code.ts). */
async function zipOf(code: CodeShape, who: Principal, s3?: S3CodeSource): Promise<CodeInput> {
  if (code.ZipFile !== undefined && code.S3Bucket !== undefined) throw new ValidationError('send either Code.ZipFile or Code.S3Bucket/S3Key, not both', { field: 'ZipFile' });
  if (code.ZipFile !== undefined) return zipFromBase64('ZipFile', code.ZipFile);
  if (code.S3Bucket !== undefined) {
    if (!s3) throw new ValidationError('Code.S3Bucket is not enabled on this deployment; send Code.ZipFile', { field: 'S3Bucket' });
    return { zipFile: await s3.fetch(who, { bucket: code.S3Bucket, key: code.S3Key ?? '', version: code.S3ObjectVersion }) };
  }
  throw new ValidationError('Code.ZipFile or Code.S3Bucket with S3Key is required (image packages are not supported)', { field: 'ZipFile' });
}


/**
 * Path name (name, name:qualifier or ARN) plus the Qualifier query parameter, which wins. An
 * ARN's account id is the tenant (an administrator's way to another tenant's functions).
 */

/** The last 4 KB of a log, cut at a character boundary, base64. */
export function logTail(logs: string): string {
  const bytes = Buffer.from(logs, 'utf8');
  let start = Math.max(0, bytes.length - LOG_TAIL_BYTES);
  while (start < bytes.length && ((bytes[start] ?? 0) & 0xc0) === 0x80) start++;
  return bytes.subarray(start).toString('base64');
}

/**
 * The subset of Lambda's REST API (2015-03-31) that deployment tools and the AWS SDK use,
 * so `new LambdaClient({ endpoint: kilnUrl })` works unchanged. Thin edge like the rest:
 * parse Lambda's shapes, call the same services as /api/v1/functions, map back. Every call acts
 * as the request's principal (the key the SigV4 access key id names): function names are its
 * tenant's, ARNs carry the tenant as the account id, and another tenant's function is
 * ResourceNotFoundException, as a missing one. Listing shows the key's own tenant's functions.
 */
export function lambdaRoutes(functions: FunctionService, invoker: FunctionInvoker, aliases: AliasService, redis?: Redis, extras?: FunctionExtras, codeLinks?: CodeLinks, s3Code?: S3CodeSource): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.onError(onLambdaError);
  // While Redis is down: 503 ServiceException at once, which the AWS SDK retries, as REST's 503.
  if (redis) app.use('/2015-03-31/*', redisGuard(redis, []));
  const managementLimit = bodyLimit({ maxSize: MAX_MANAGEMENT_BYTES, onError: (c) => lambdaError(c, 'RequestTooLargeException', 413, `request body is larger than ${MAX_MANAGEMENT_BYTES} bytes`) });
  const invokeLimit = bodyLimit({ maxSize: SYNC_PAYLOAD_BYTES, onError: (c) => lambdaError(c, 'RequestTooLargeException', 413, `request payload is larger than ${SYNC_PAYLOAD_BYTES} bytes`) });

  app.post(BASE, managementLimit, async (c) => {
    const input = parseBody(CreateInput, await c.req.text());
    const { name, tenant } = parseFunctionName(input.FunctionName);
    const runtime = input.Runtime;
    if (runtime === undefined) throw new ValidationError('Runtime is required', { field: 'Runtime' });
    const who = c.get('principal');
    // Checked before the function exists, so bad tags leave nothing behind.
    const tags = input.Tags !== undefined && extras ? checkTags(input.Tags) : undefined;
    const record = await functions.create(who, { ...settingsOf(input), name, tenant, runtime, code: await zipOf(input.Code, who, s3Code), publish: input.Publish ?? false });
    if (tags) await extras?.writeTags(record, tags);
    return c.json(configuration(input.Publish ? await functions.publish(who, record) : record), 201);
  });

  const list = async (c: Context<AppEnv>) => {
    const which = c.req.query('FunctionVersion');
    if (which !== undefined && which !== 'ALL') throw new ValidationError(`FunctionVersion must be ALL; got "${which.slice(0, 40)}"`, { field: 'FunctionVersion' });
    const who = c.get('principal');
    const page = await functions.list(who, c.req.query('Marker') || undefined, maxItemsOf(c, 10000));
    // ALL: each function of the page with its published versions after $LATEST (MaxItems counts functions).
    const records = which === 'ALL' ? (await Promise.all(page.records.map((r) => functions.versions(who, { name: r.name, tenant: r.tenant })))).flat() : page.records;
    return c.json({ Functions: records.map((r) => configuration(r)), ...(page.nextMarker ? { NextMarker: page.nextMarker } : {}) });
  };
  app.get(BASE, list);
  app.get(`${BASE}/`, list);

  app.get(`${BASE}/:name`, async (c) => {
    const { fn, qualifier } = lambdaTarget(c);
    const { record, alias } = await functions.resolve(c.get('principal'), fn, qualifier);
    const origin = new URL(c.req.url).origin;
    // A link that downloads the version's zip for 10 minutes (functions/code-links.ts), as Lambda's presigned URL.
    const location = codeLinks ? codeLinks.url(origin, record) : `${origin}/api/v1/functions/${record.name}?qualifier=${encodeURIComponent(record.version)}&tenant=${record.tenant}`;
    const [tags, reserved] = extras ? await Promise.all([extras.readTags(record.tenant, record.name), extras.reserved(record.tenant, record.name)]) : [{}, undefined];
    return c.json({ Configuration: configuration(record, alias?.name), Code: { RepositoryType: 'Kiln', Location: location }, Tags: tags, ...(reserved !== undefined ? { Concurrency: { ReservedConcurrentExecutions: reserved } } : {}) });
  });
  app.get(`${BASE}/:name/configuration`, async (c) => {
    const { fn, qualifier } = lambdaTarget(c);
    const { record, alias } = await functions.resolve(c.get('principal'), fn, qualifier);
    return c.json(configuration(record, alias?.name));
  });
  app.delete(`${BASE}/:name`, async (c) => {
    const { fn, qualifier } = lambdaTarget(c);
    await functions.delete(c.get('principal'), fn, qualifier);
    return c.body(null, 204);
  });
  app.put(`${BASE}/:name/code`, managementLimit, async (c) => {
    const { fn } = lambdaTarget(c);
    const who = c.get('principal');
    const input = parseBody(CodeInputShape, await c.req.text());
    const record = await functions.updateCode(who, fn, await zipOf(input, who, s3Code), input.Publish ?? false, input.RevisionId);
    return c.json(configuration(input.Publish ? await functions.publish(who, fn) : record));
  });
  app.put(`${BASE}/:name/configuration`, managementLimit, async (c) => {
    const { fn } = lambdaTarget(c);
    const input = parseBody(ConfigInput, await c.req.text());
    return c.json(configuration(await functions.updateConfiguration(c.get('principal'), fn, settingsOf(input), input.RevisionId)));
  });
  app.post(`${BASE}/:name/versions`, managementLimit, async (c) => {
    const { fn } = lambdaTarget(c);
    const input = parseBody(PublishInput, await c.req.text());
    const opts = {
      ...(input.Description !== undefined ? { description: input.Description } : {}),
      ...(input.CodeSha256 ? { codeSha256: input.CodeSha256 } : {}),
      ...(input.RevisionId !== undefined ? { revisionId: input.RevisionId } : {}),
    };
    return c.json(configuration(await functions.publish(c.get('principal'), fn, opts)), 201);
  });
  app.get(`${BASE}/:name/versions`, async (c) => {
    const { fn } = lambdaTarget(c);
    // $LATEST, then published versions in order; Marker is the last version of the previous page.
    const all = await functions.versions(c.get('principal'), fn);
    const marker = c.req.query('Marker') || undefined;
    const from = marker === undefined ? 0 : all.findIndex((r) => r.version === marker) + 1;
    const max = maxItemsOf(c, 10000) ?? 50;
    const page = all.slice(from, from + max);
    const next = from + max < all.length ? page[page.length - 1]?.version : undefined;
    return c.json({ Versions: page.map((r) => configuration(r)), ...(next ? { NextMarker: next } : {}) });
  });

  lambdaAliasRoutes(app, BASE, aliases, managementLimit);

  app.post(`${BASE}/:name/invocations`, invokeLimit, async (c) => {
    const { fn, qualifier } = lambdaTarget(c);
    const type = c.req.header('X-Amz-Invocation-Type') ?? 'RequestResponse';
    if (!INVOCATION_TYPES.includes(type)) throw new ValidationError(`X-Amz-Invocation-Type must be one of ${INVOCATION_TYPES.join(', ')}; got "${type.slice(0, 40)}"`, { field: 'InvocationType' });
    const logType = c.req.header('X-Amz-Log-Type') ?? 'None';
    if (logType !== 'None' && logType !== 'Tail') throw new ValidationError(`X-Amz-Log-Type must be None or Tail; got "${logType.slice(0, 40)}"`, { field: 'LogType' });
    const key = idempotencyKey(c.req.header(LAMBDA_IDEMPOTENCY_HEADER), LAMBDA_IDEMPOTENCY_HEADER);
    const clientContext = decodeClientContext(c.req.header('X-Amz-Client-Context'));
    const out = await invoker.invoke(c.get('principal'), fn, qualifier, await c.req.text(), type as InvocationType, key, clientContext);
    c.header('x-amzn-RequestId', out.id);
    c.header('X-Amz-Executed-Version', out.function.version);
    if (!out.record) return c.body(null, type === 'DryRun' ? 204 : 202);
    const record = out.record;
    // Kiln's own failures (no capacity, lost executor) are service errors, not function errors.
    if (record.error?.errorType.startsWith('Kiln.')) return lambdaErrorForCode(c, record.error.errorType.slice(5), 500, record.error.errorMessage);
    if (logType === 'Tail') c.header('X-Amz-Log-Result', logTail(record.logs));
    c.header('Content-Type', 'application/json');
    if (record.status !== 'succeeded') {
      c.header('X-Amz-Function-Error', 'Unhandled');
      // A custom runtime's own error document goes back as it posted it, as on Lambda.
      return c.body(record.errorBody ?? JSON.stringify(functionErrorPayload(out.function.runtime, out.id, record.error, record.status)), 200);
    }
    // A custom runtime's bytes go back untouched; JSON results as the JSON text.
    const body = record.resultBase64 !== undefined ? Buffer.from(record.resultBase64, 'base64') : (record.resultJson ?? JSON.stringify(record.result ?? null));
    return c.body(typeof body === 'string' ? body : new Uint8Array(body), 200);
  });
  return app;
}

/** Lambda's bound on X-Amz-Client-Context, base64 included. */
const CLIENT_CONTEXT_MAX = 3583;

/**
 * X-Amz-Client-Context: base64 of a JSON object, which the handler sees as context.clientContext
 * (Python: client_context; custom runtimes: the Lambda-Runtime-Client-Context header). Returned
 * as the JSON text; anything else is refused as Lambda refuses it.
 */
export function decodeClientContext(header: string | undefined): string | undefined {
  if (header === undefined || header === '') return undefined;
  const refuse = () => new KilnError('InvalidRequestContent', 400, 'Client context must be a valid Base64-encoded JSON object.', { field: 'ClientContext' });
  if (header.length > CLIENT_CONTEXT_MAX) throw new KilnError('InvalidRequestContent', 400, `Client context must be at most ${CLIENT_CONTEXT_MAX} bytes.`, { field: 'ClientContext' });
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(header)) throw refuse();
  const text = Buffer.from(header, 'base64').toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw refuse();
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw refuse();
  return JSON.stringify(value);
}
