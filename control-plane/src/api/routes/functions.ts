import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import { egressPolicySchema } from '@kiln/executor/egress-policy';
import { SecretNameParam } from '../../egress/secrets.js';
import { ValidationError } from '../../errors.js';
import type { FunctionInvoker, InvocationType } from '../../functions/invoker.js';
import { zipFromBase64, type CodeInput } from '../../functions/package.js';
import type { FunctionService } from '../../functions/service.js';
import type { FunctionRef, FunctionVersionRecord } from '../../functions/types.js';
import { TENANT_ID } from '../../tenancy/principal.js';
import { jsonText, newRouter, type AppEnv } from '../router.js';
import { recordJson } from '../../invocation/contract.js';
import { idempotencyKey } from '../../invocation/submit.js';
import { ErrorSchema, ExecutionRecordSchema, IdempotencyHeaders, LambdaErrorSchema } from '../schemas.js';

export const errors = {
  400: { description: 'Invalid request', content: { 'application/json': { schema: ErrorSchema } } },
  404: { description: 'Unknown function, version, alias or dead letter (another tenant\'s is unknown too)', content: { 'application/json': { schema: ErrorSchema } } },
  409: { description: 'Name taken or concurrent change', content: { 'application/json': { schema: ErrorSchema } } },
  413: { description: 'Body over the size limit', content: { 'application/json': { schema: ErrorSchema } } },
  429: {
    description:
      'QuotaExceeded: the tenant is at a quota (`data.quota`: `functions` on create, `executions` on invoke, `requestsPerSecond` on any call; `data.limit`, `data.used`), or TooManyRequests: the template\'s queue is full. Retry after Retry-After seconds',
    content: { 'application/json': { schema: ErrorSchema } } },
};

const CodeSchema = z
  .object({
    zipFile: z.string().optional().openapi({ description: 'base64 zip archive (Lambda layout: handler module at the root)' }),
    source: z.string().min(1).optional().openapi({ description: 'One source file, named after the handler module', example: 'exports.handler = async (e) => e' }),
  })
  .strict()
  .openapi('FunctionCode');

const settings = {
  handler: z.string().optional().openapi({ example: 'index.handler' }),
  template: z.string().optional().openapi({ description: 'Template to run on (default: the runtime\'s own)' }),
  memorySize: z.number().int().optional().openapi({ description: 'MB, 128-10240 (default 128)' }),
  ephemeralStorageMB: z.number().int().optional().openapi({ description: 'Size of /tmp in MB (Lambda\'s EphemeralStorage.Size), 512-10240 and at most KILN_LAMBDA_MAX_EPHEMERAL_MB (default 512)' }),
  timeout: z.number().int().optional().openapi({ description: 'Seconds (default 3)' }),
  environment: z.record(z.string()).optional(),
  network: egressPolicySchema
    .nullable()
    .optional()
    .openapi({
      description:
        "The function's egress policy, put on every sandbox that runs it (templates with an egress policy only, else 409 NetworkPolicyUnsupported). Within the template's policy, widened by the tenant's egress grant if it has one (else 400 NetworkPolicyWidens); null removes it",
      example: { allow: { domains: ['api.example.com'], ports: [443] } },
    }),
  secrets: z
    .array(SecretNameParam)
    .max(32)
    .optional()
    .openapi({ description: "Names of the tenant's egress secrets (PUT /api/v1/secrets/{name}) bound to every sandbox that runs it: the handler's environment gets KILN_SECRET_<NAME> = a placeholder, replaced by Kiln's proxy on requests to the secret's hosts. [] removes them", example: ['openai'] }),
  description: z.string().optional(),
  maxRetryAttempts: z.number().int().optional().openapi({ description: 'Retries of a failed async invocation before it is dead-lettered, 0-2 (default 2)' }),
};

const CreateSchema = z
  .object({ name: z.string().openapi({ example: 'hello' }), runtime: z.string().openapi({ example: 'nodejs20.x' }), code: CodeSchema, publish: z.boolean().optional(), ...settings })
  .strict()
  .openapi('FunctionCreate');
const UpdateSchema = z
  .object({ runtime: z.string().optional(), code: CodeSchema.optional(), publish: z.boolean().optional(), ...settings })
  .strict()
  .openapi('FunctionUpdate');

const FunctionSchema = z
  .object({
    tenant: z.string().openapi({ description: 'The tenant that owns it; function names are per tenant' }),
    name: z.string(),
    version: z.string(),
    runtime: z.string(),
    handler: z.string(),
    template: z.string(),
    memorySize: z.number(),
    ephemeralStorageMB: z.number().optional().openapi({ description: 'Size of /tmp in MB (absent on functions made before it: 512)' }),
    timeout: z.number(),
    environment: z.record(z.string()),
    network: z.object({ allow: z.object({ all: z.boolean(), domains: z.array(z.string()), cidrs: z.array(z.string()), ports: z.array(z.number()) }), deny: z.object({ domains: z.array(z.string()), cidrs: z.array(z.string()), ports: z.array(z.number()) }) }).optional().openapi({ description: 'Its egress policy, normalised; absent: the template\'s' }),
    secrets: z.array(z.string()).optional().openapi({ description: 'Names of the tenant secrets bound to its sandboxes' }),
    description: z.string(),
    maxRetryAttempts: z.number(),
    codeSha256: z.string(),
    codeSize: z.number(),
    lastModified: z.string(),
    revisionId: z.string(),
  })
  .openapi('Function');

const DeadLetterSchema = z
  .object({
    id: z.string(),
    tenant: z.string().optional().openapi({ description: 'The function\'s tenant' }),
    functionName: z.string(),
    qualifier: z.string(),
    event: z.string(),
    error: LambdaErrorSchema.openapi({ description: 'The last attempt\'s error: the handler\'s errorType and message, or Kiln.<code>' }),
    logs: z.string().optional().openapi({ description: 'The last attempt\'s log' }),
    logsTruncated: z.boolean().optional(),
    attempts: z.number(),
    failedAt: z.string(),
  })
  .openapi('DeadLetter');

export const nameParam = z.object({ name: z.string().openapi({ param: { name: 'name', in: 'path' }, example: 'hello' }) });
/**
 * Function names are per tenant, looked up in the key's own tenant. An administrator reaches
 * another tenant's functions by naming it; any other key naming another tenant finds nothing.
 */
export const tenantQuery = z.object({
  tenant: z
    .string()
    .regex(TENANT_ID)
    .optional()
    .openapi({ description: 'Administrators only: the tenant whose functions to act on (default: the key\'s own). Another key naming another tenant is answered as if the function did not exist (404, an empty list).' }),
});
const qualifierQuery = tenantQuery.extend({ qualifier: z.string().optional().openapi({ description: '$LATEST (default), a version number or an alias name (invoking an alias with weighted routing picks the version per invocation)' }) });
export const json = <T extends z.ZodTypeAny>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });

const routes = {
  create: createRoute({ method: 'post', path: '/api/v1/functions', tags: ['functions'], summary: 'Create a function (in the key\'s tenant)', request: { query: tenantQuery, body: { required: true, content: { 'application/json': { schema: CreateSchema } } } }, responses: { 201: json(FunctionSchema, 'Created'), ...errors } }),
  list: createRoute({
    method: 'get',
    path: '/api/v1/functions',
    tags: ['functions'],
    summary: 'List the tenant\'s functions in name order',
    request: { query: tenantQuery.extend({ marker: z.string().optional(), maxItems: z.coerce.number().int().min(1).max(10000).optional() }) },
    responses: { 200: json(z.object({ functions: z.array(FunctionSchema), nextMarker: z.string().optional() }), 'A page of functions'), ...errors },
  }),
  get: createRoute({ method: 'get', path: '/api/v1/functions/{name}', tags: ['functions'], summary: 'Get a function ($LATEST or a version)', request: { params: nameParam, query: qualifierQuery }, responses: { 200: json(FunctionSchema, 'The function'), ...errors } }),
  update: createRoute({
    method: 'put',
    path: '/api/v1/functions/{name}',
    tags: ['functions'],
    summary: 'Update configuration and/or code of $LATEST',
    request: { params: nameParam, query: tenantQuery, body: { required: true, content: { 'application/json': { schema: UpdateSchema } } } },
    responses: { 200: json(FunctionSchema, 'The updated function'), ...errors },
  }),
  delete: createRoute({ method: 'delete', path: '/api/v1/functions/{name}', tags: ['functions'], summary: 'Delete a function, or one version with ?qualifier', request: { params: nameParam, query: qualifierQuery }, responses: { 204: { description: 'Deleted' }, ...errors } }),
  publish: createRoute({
    method: 'post',
    path: '/api/v1/functions/{name}/versions',
    tags: ['functions'],
    summary: 'Publish $LATEST as an immutable numbered version',
    request: { params: nameParam, query: tenantQuery, body: { required: false, content: { 'application/json': { schema: z.object({ description: z.string().optional(), codeSha256: z.string().optional() }).strict() } } } },
    responses: { 201: json(FunctionSchema, 'The version'), ...errors },
  }),
  versions: createRoute({ method: 'get', path: '/api/v1/functions/{name}/versions', tags: ['functions'], summary: 'List $LATEST and the published versions', request: { params: nameParam, query: tenantQuery }, responses: { 200: json(z.object({ versions: z.array(FunctionSchema) }), 'Versions'), ...errors } }),
  invoke: createRoute({
    method: 'post',
    path: '/api/v1/functions/{name}/invocations',
    tags: ['functions'],
    summary: 'Invoke a function',
    description:
      'The body is the event (any JSON, at most 512 levels deep; empty means {}). `type=Event` queues it and returns 202; failed async invocations are retried and then dead-lettered with their error and logs. Limits: 6 MB sync, 1 MB async. ' +
      'RequestResponse runs at most once (Kiln never re-runs it; the caller retries); Event runs at least once, and `Idempotency-Key` makes retried submissions one invocation.',
    request: { headers: IdempotencyHeaders, params: nameParam, query: qualifierQuery.extend({ type: z.enum(['RequestResponse', 'Event', 'DryRun']).optional() }) },
    responses: { 200: json(ExecutionRecordSchema, 'Finished (succeeded, failed or timeout)'), 202: json(z.object({ id: z.string().uuid() }), 'Queued'), 204: { description: 'DryRun: the function exists and the payload is valid' }, ...errors },
  }),
  deadLetters: createRoute({ method: 'get', path: '/api/v1/functions/{name}/dead-letters', tags: ['functions'], summary: 'Async invocations that failed every attempt', request: { params: nameParam, query: tenantQuery }, responses: { 200: json(z.object({ deadLetters: z.array(DeadLetterSchema) }), 'Newest first'), ...errors } }),
  replay: createRoute({
    method: 'post',
    path: '/api/v1/functions/{name}/dead-letters/{id}/replay',
    tags: ['functions'],
    summary: 'Queue a dead letter\'s event again (async) and remove it',
    request: { params: nameParam.extend({ id: z.string().openapi({ param: { name: 'id', in: 'path' } }) }), query: tenantQuery },
    responses: { 202: json(z.object({ id: z.string().uuid() }), 'Queued'), ...errors },
  }),
};

/** The record as the API shows it: everything but where the code is stored. */
function view(r: FunctionVersionRecord): z.infer<typeof FunctionSchema> {
  const out: Omit<FunctionVersionRecord, 'codeBlob'> & { codeBlob?: string } = { ...r };
  delete out.codeBlob;
  return out;
}

function codeOf(code: z.infer<typeof CodeSchema>): CodeInput {
  if ((code.zipFile === undefined) === (code.source === undefined)) throw new ValidationError('code must have exactly one of zipFile or source', { field: 'code' });
  return code.zipFile !== undefined ? zipFromBase64('code.zipFile', code.zipFile) : { source: code.source as string };
}

/** Thin edge: parse, call the function service or invoker, map the result. */
export function functionRoutes(functions: FunctionService, invoker: FunctionInvoker): OpenAPIHono<AppEnv> {
  const app = newRouter();
  /** The function a request names: the path's name in the tenant of `?tenant=` (else the key's own). */
  const ref = (name: string, q: { tenant?: string | undefined }): FunctionRef => ({ name, tenant: q.tenant });
  app.openapi(routes.create, async (c) => {
    const { code, ...body } = c.req.valid('json');
    return c.json(view(await functions.create(c.get('principal'), { ...body, tenant: c.req.valid('query').tenant, code: codeOf(code) })), 201);
  });
  app.openapi(routes.list, async (c) => {
    const q = c.req.valid('query');
    const page = await functions.list(c.get('principal'), q.marker, q.maxItems, q.tenant);
    return c.json({ functions: page.records.map(view), ...(page.nextMarker ? { nextMarker: page.nextMarker } : {}) }, 200);
  });
  app.openapi(routes.get, async (c) => {
    const q = c.req.valid('query');
    return c.json(view(await functions.get(c.get('principal'), ref(c.req.valid('param').name, q), q.qualifier)), 200);
  });
  app.openapi(routes.update, async (c) => {
    const fn = ref(c.req.valid('param').name, c.req.valid('query'));
    const who = c.get('principal');
    const { code, publish, ...config } = c.req.valid('json');
    if (code && Object.keys(config).length) await functions.updateConfiguration(who, fn, config);
    const record = code ? await functions.updateCode(who, fn, codeOf(code), publish) : await functions.updateConfiguration(who, fn, config);
    if (publish && !code) await functions.publish(who, fn);
    return c.json(view(record), 200);
  });
  app.openapi(routes.delete, async (c) => {
    const q = c.req.valid('query');
    await functions.delete(c.get('principal'), ref(c.req.valid('param').name, q), q.qualifier);
    return c.body(null, 204);
  });
  app.openapi(routes.publish, async (c) => {
    const body = c.req.header('content-type')?.includes('json') ? c.req.valid('json') : {};
    return c.json(view(await functions.publish(c.get('principal'), ref(c.req.valid('param').name, c.req.valid('query')), body)), 201);
  });
  app.openapi(routes.versions, async (c) => c.json({ versions: (await functions.versions(c.get('principal'), ref(c.req.valid('param').name, c.req.valid('query')))).map(view) }, 200));
  app.openapi(routes.invoke, async (c) => {
    const { name } = c.req.valid('param');
    const q = c.req.valid('query');
    const type: InvocationType = q.type ?? 'RequestResponse';
    const out = await invoker.invoke(c.get('principal'), ref(name, q), q.qualifier, await c.req.text(), type, idempotencyKey(c.req.header('idempotency-key'), 'Idempotency-Key'));
    if (type === 'DryRun') return c.body(null, 204);
    if (!out.record) return c.json({ id: out.id }, 202);
    // `result` embedded as the handler wrote it (recordJson).
    return jsonText(c, recordJson({ ...out.record, version: out.function.version }));
  });
  app.openapi(routes.deadLetters, async (c) => c.json({ deadLetters: await invoker.listDeadLetters(c.get('principal'), ref(c.req.valid('param').name, c.req.valid('query'))) }, 200));
  app.openapi(routes.replay, async (c) => {
    const { name, id } = c.req.valid('param');
    return c.json({ id: (await invoker.replay(c.get('principal'), ref(name, c.req.valid('query')), id)).id }, 202);
  });
  return app;
}
