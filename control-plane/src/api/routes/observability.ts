import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import type { FunctionService } from '../../functions/service.js';
import { namespaceOf } from '../../functions/service.js';
import type { FunctionStats } from '../../observability/function-stats.js';
import type { PoolsView } from '../../observability/pools.js';
import type { SessionUsageReader } from '../../observability/session-usage.js';
import { isAdmin } from '../../tenancy/principal.js';
import { ErrorSchema } from '../schemas.js';
import { newRouter, type AppEnv } from '../router.js';
import { json, nameParam, tenantQuery } from './functions.js';

const errors = {
  400: { description: 'Invalid request', content: { 'application/json': { schema: ErrorSchema } } },
  404: { description: 'Unknown session or function (another tenant\'s is unknown too)', content: { 'application/json': { schema: ErrorSchema } } },
  410: { description: 'The session was lost', content: { 'application/json': { schema: ErrorSchema } } },
  503: { description: 'Redis or the executor unavailable', content: { 'application/json': { schema: ErrorSchema } } },
};

const SessionUsageSchema = z
  .object({
    sessionId: z.string(),
    source: z.string().openapi({ description: '"cgroup-v1", "cgroup-v2", or "none" (the executor has no cgroups: no figures)' }),
    cpuUsageUs: z.number().optional().openapi({ description: 'CPU time since the sandbox booted, µs; the CPU share is the difference of two samples over the difference of their sampledAtMs' }),
    cpuLimitCores: z.number().optional(),
    memoryBytes: z.number().optional(),
    memoryLimitBytes: z.number().optional(),
    memoryPeakBytes: z.number().optional(),
    tasks: z.number().optional(),
    sampledAtMs: z.number(),
  })
  .openapi('SessionUsage');

const Histogram = z.object({ count: z.number(), sumMs: z.number(), buckets: z.array(z.object({ leMs: z.number().nullable().openapi({ description: 'Upper bound in ms; null: above the last bound' }), count: z.number() })) });

const PoolSchema = z
  .object({
    template: z.string(),
    sandboxes: z.object({ idleWarm: z.number(), idleHot: z.number(), busy: z.number(), booting: z.number(), reaping: z.number() }),
    executors: z.number(),
    starts: z.object({ hot: Histogram, warm: Histogram, cold: Histogram }).openapi({ description: 'Per start type since the template was first used: invocations started and the start latency (finding or booting a sandbox, then loading the function)' }),
    executorDetail: z.array(z.object({ id: z.string(), ok: z.boolean(), sandboxes: z.number().optional(), maxSandboxes: z.number().optional(), uptimeMs: z.number().optional(), error: z.string().optional() })).optional().openapi({ description: 'Administrators only' }),
  })
  .openapi('Pool');

const FunctionMetricsSchema = z
  .object({
    function: z.string(),
    windowMs: z.number(),
    invocations: z.number(),
    errors: z.number(),
    byStatus: z.record(z.number()),
    byStartType: z.record(z.number()),
    latencyMs: z.object({ p50: z.number(), p90: z.number(), p99: z.number(), max: z.number(), mean: z.number() }).optional(),
    sampled: z.boolean().openapi({ description: 'True when the window held more invocations than are kept (10,000): the figures are of the newest' }),
  })
  .openapi('FunctionMetrics');

const routes = {
  session: createRoute({
    method: 'get',
    path: '/api/v1/sessions/{id}/metrics',
    tags: ['sessions'],
    summary: 'CPU, memory and tasks of the session\'s sandbox, from its cgroup',
    description: 'One sample; reading it does not count as session activity.',
    request: { params: z.object({ id: z.string().max(200).openapi({ param: { name: 'id', in: 'path' } }) }) },
    responses: { 200: json(SessionUsageSchema, 'A sample'), ...errors },
  }),
  fn: createRoute({
    method: 'get',
    path: '/api/v1/functions/{name}/metrics',
    tags: ['functions'],
    summary: 'Invocation counts, errors and latency percentiles of a function',
    request: {
      params: nameParam,
      query: tenantQuery.extend({ windowMs: z.coerce.number().int().min(1000).max(30 * 86_400_000).default(3_600_000).openapi({ description: 'The last windowMs (default one hour, at most the history\'s retention)' }) }),
    },
    responses: { 200: json(FunctionMetricsSchema, 'The figures'), ...errors },
  }),
  pools: createRoute({
    method: 'get',
    path: '/api/v1/pools',
    tags: ['pools'],
    summary: 'Each template\'s pool: sandboxes by state, executors, start counts and start-latency histograms',
    description: 'Pools are the deployment\'s, shared by tenants: any key with the read scope sees the counts (no tenant, sandbox or executor names); administrators also get each executor\'s report.',
    responses: { 200: json(z.object({ pools: z.array(PoolSchema) }), 'Every template\'s pool'), 503: errors[503] },
  }),
};

/** Observability: a session's usage, a function's figures, the pools' state. Thin edges over observability/. */
export function observabilityRoutes(deps: { usage?: SessionUsageReader; functionStats?: { stats: FunctionStats; functions: FunctionService }; pools: PoolsView }): OpenAPIHono<AppEnv> {
  const app = newRouter();
  const { usage, functionStats } = deps;
  if (usage) app.openapi(routes.session, async (c) => c.json(await usage.sample(c.req.valid('param').id, c.get('principal')), 200));
  if (functionStats) {
    app.openapi(routes.fn, async (c) => {
      const who = c.get('principal');
      const { name } = c.req.valid('param');
      const { tenant, windowMs } = c.req.valid('query');
      // Its existence in the tenant first: an unknown (or another tenant's) function is 404.
      await functionStats.functions.get(who, { name, tenant });
      const ns = namespaceOf(who, tenant) as string;
      return c.json(await functionStats.stats.metrics(ns, name, windowMs), 200);
    });
  }
  app.openapi(routes.pools, async (c) => c.json({ pools: await deps.pools.list(isAdmin(c.get('principal'))) }, 200));
  return app;
}
