import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import type { ExecutionService } from '../../executions/service.js';
import { recordJson } from '../../invocation/contract.js';
import { idempotencyKey } from '../../invocation/submit.js';
import { ErrorSchema, ExecutionRecordSchema, ExecutionRequestSchema, IdempotencyHeaders } from '../schemas.js';
import { jsonText, newRouter, type AppEnv } from '../router.js';

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
  app.openapi(get, async (c) => jsonText(c, recordJson(await service.get(c.req.valid('param').id, c.get('principal')))) as never);
  return app;
}
