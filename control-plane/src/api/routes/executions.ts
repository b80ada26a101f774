import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import type { ExecutionService } from '../../executions/service.js';
import { recordJson } from '../../invocation/contract.js';
import { idempotencyKey } from '../../invocation/submit.js';
import { ErrorSchema, ExecutionRecordSchema, ExecutionRequestSchema, IdempotencyHeaders } from '../schemas.js';
import { jsonText, newRouter, type AppEnv } from '../router.js';
import { TENANT_ID } from '../../tenancy/principal.js';

const errors = {
  400: { description: 'Invalid request (an event nested more than 512 levels deep among them)', content: { 'application/json': { schema: ErrorSchema } } },
  404: { description: 'Unknown template or execution (another tenant\'s execution is unknown too)', content: { 'application/json': { schema: ErrorSchema } } },
  413: { description: 'Body over the size limit', content: { 'application/json': { schema: ErrorSchema } } },
  429: {
    description:
      'QuotaExceeded: the tenant is at a quota (`data.quota`: `executions` queued + running, or `requestsPerSecond`; `data.limit`, `data.used`), or TooManyRequests: the template\'s queue is full (sync and async alike). Retry after Retry-After seconds',
    content: { 'application/json': { schema: ErrorSchema } } },
  503: { description: 'Redis or capacity unavailable', content: { 'application/json': { schema: ErrorSchema } } },
};

const create = createRoute({
  method: 'post',
  path: '/api/v1/executions',
  tags: ['executions'],
  summary: 'Run handler code',
  description:
    'Queues the code and, by default, waits for the result. With `wait: false` it returns 202 and the id. ' +
    'A synchronous execution runs at most once: if the connection drops, Kiln does not run it again (retry it yourself). ' +
    'An asynchronous one runs at least once (retried on platform failures, and after a control-plane crash); send `Idempotency-Key` to make retried submissions one execution.',
  request: { headers: IdempotencyHeaders, body: { required: true, content: { 'application/json': { schema: ExecutionRequestSchema } } } },
  responses: {
    200: { description: 'Finished (succeeded, failed or timeout)', content: { 'application/json': { schema: ExecutionRecordSchema } } },
    202: { description: 'Queued', content: { 'application/json': { schema: z.object({ id: z.string().uuid() }) } } },
    ...errors,
  },
});

const get = createRoute({
  method: 'get',
  path: '/api/v1/executions/{id}',
  tags: ['executions'],
  summary: 'Get an execution',
  request: { params: z.object({ id: z.string().uuid().openapi({ param: { name: 'id', in: 'path' } }) }) },
  responses: { 200: { description: 'The execution', content: { 'application/json': { schema: ExecutionRecordSchema } } }, ...errors },
});

const when = z
  .string()
  .regex(/^\d{1,15}$|^\d{4}-\d{2}-\d{2}T[\d:.]+Z$/, 'milliseconds since the epoch or an ISO 8601 UTC time')
  .transform((s) => (/^\d+$/.test(s) ? Number(s) : Date.parse(s)))
  .refine((n) => Number.isFinite(n), 'not a time');

const list = createRoute({
  method: 'get',
  path: '/api/v1/executions',
  tags: ['executions'],
  summary: 'List finished executions, newest first',
  description:
    'Finished executions (ad-hoc and function invocations) of the key\'s tenant, newest first, with their records and logs, kept for KILN_RESULT_TTL_SECONDS. ' +
    'Filters combine; a page may hold fewer than `limit` records and still have a `nextCursor` (each request reads at most 2,000 entries of the history).',
  request: {
    query: z.object({
      function: z.string().max(140).optional().openapi({ description: 'Only invocations of this function' }),
      template: z.string().max(64).optional(),
      status: z.enum(['succeeded', 'failed', 'timeout']).optional(),
      startType: z.enum(['hot', 'warm', 'cold']).optional(),
      since: when.optional().openapi({ description: 'Finished at or after (ms since the epoch, or ISO 8601)' }),
      until: when.optional().openapi({ description: 'Finished at or before' }),
      limit: z.coerce.number().int().min(1).max(100).default(20),
      cursor: z.string().max(2048).optional().openapi({ description: 'The `nextCursor` of the previous page' }),
      tenant: z.string().regex(TENANT_ID).optional().openapi({ description: 'Administrators only: another tenant\'s history (another key gets an empty page)' }),
    }),
  },
  responses: {
    200: {
      description: 'A page of records',
      content: {
        'application/json': {
          schema: z.object({
            executions: z.array(ExecutionRecordSchema.extend({ function: z.object({ name: z.string(), version: z.string() }).optional().openapi({ description: 'Set for function invocations' }) })),
            nextCursor: z.string().optional(),
          }),
        },
      },
    },
    ...errors,
  },
});

/** Thin edge: parse, call the service, map the result. */
export function executionRoutes(service: ExecutionService): OpenAPIHono<AppEnv> {
  const app = newRouter();
  app.openapi(create, async (c) => {
    const body = c.req.valid('json');
    const out = await service.submit({ ...body, idempotencyKey: idempotencyKey(c.req.header('idempotency-key'), 'Idempotency-Key') }, c.get('principal'));
    if (!out.record) return c.json({ id: out.id }, 202);
    // `result` is arbitrary JSON (embedded as the handler wrote it), which Hono's typed-response check cannot express.
    return jsonText(c, recordJson(out.record)) as never;
  });
  app.openapi(list, async (c) => {
    const { tenant, limit, cursor, ...filter } = c.req.valid('query');
    const page = await service.list(c.get('principal'), { tenant, filter, limit, cursor });
    // Records embed `result` as the handler wrote it (recordJson).
    return jsonText(c, `{"executions":[${page.executions.map((r) => recordJson(r)).join(',')}]${page.nextCursor ? `,"nextCursor":${JSON.stringify(page.nextCursor)}` : ''}}`) as never;
  });
  app.openapi(get, async (c) => jsonText(c, recordJson(await service.get(c.req.valid('param').id, c.get('principal')))) as never);
  return app;
}
