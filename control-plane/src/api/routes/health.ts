import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import type { Redis } from 'ioredis';
import type { AgentPool } from '../../agent/client.js';
import type { ExecutorDirectory } from '../../scheduler/records.js';
import type { TemplateRegistry } from '../../templates/registry.js';
import { newRouter, type AppEnv } from '../router.js';
import { HealthSchema } from '../schemas.js';

const route = createRoute({
  method: 'get',
  path: '/api/v1/health',
  tags: ['health'],
  summary: 'Redis and executor reachability',
  responses: {
    200: { description: 'Everything reachable', content: { 'application/json': { schema: HealthSchema } } },
    503: { description: 'Redis or an executor is unreachable', content: { 'application/json': { schema: HealthSchema } } },
  },
});

export function healthRoutes(deps: { redis: Redis; executors: ExecutorDirectory; agents: AgentPool; templates: TemplateRegistry }): OpenAPIHono<AppEnv> {
  const app = newRouter();
  app.openapi(route, async (c) => {
    const body: z.infer<typeof HealthSchema> = { status: 'ok', redis: { ok: true }, executors: [] };
    const t0 = performance.now();
    try {
      await deps.redis.ping();
      body.redis.latencyMs = Number((performance.now() - t0).toFixed(3));
      for (const template of deps.templates.names()) {
        for (const id of await deps.executors.executorIds(template)) {
          const handle = await deps.executors.executor(id);
          if (!handle) continue;
          try {
            const h = await deps.agents.get(handle).health(1500);
            const limits = h.limits === 'cgroup-v1' || h.limits === 'cgroup-v2' ? h.limits : 'none';
            const workspaceFs = h.workspaceFs === 'ext4-image' ? h.workspaceFs : 'none';
            body.executors.push({ id, template, ok: true, sandboxes: h.sandboxes, limits, limitsDetail: h.limitsDetail, workspaceFs, workspaceFsDetail: h.workspaceFsDetail });
          } catch (err) {
            body.executors.push({ id, template, ok: false, error: (err as Error).message });
          }
        }
      }
    } catch (err) {
      body.redis = { ok: false, error: (err as Error).message };
    }
    const ok = body.redis.ok && body.executors.every((e) => e.ok);
    body.status = ok ? 'ok' : 'degraded';
    return c.json(body, ok ? 200 : 503);
  });
  return app;
}
