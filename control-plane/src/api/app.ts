import type { OpenAPIHono } from '@hono/zod-openapi';
import type { Redis } from 'ioredis';
import { bodyLimit } from 'hono/body-limit';
import type { AgentPool } from '../agent/client.js';
import type { ExecutionService } from '../executions/service.js';
import type { ExecutorStore } from '../store/executors.js';
import type { TemplateRegistry } from '../templates/registry.js';
import { docsRoutes } from './docs.js';
import { errorBody, onError } from './errors.js';
import { newRouter, type AppEnv } from './router.js';
import { executionRoutes } from './routes/executions.js';
import { healthRoutes } from './routes/health.js';

export interface AppDeps {
  redis: Redis;
  executions: ExecutionService;
  executors: ExecutorStore;
  agents: AgentPool;
  templates: TemplateRegistry;
  maxBodyBytes: number;
}

/**
 * The REST API. Validation failures, malformed JSON and oversized bodies all come back as
 * the same error body with a code, so clients handle one shape.
 */
export function createApp(deps: AppDeps): OpenAPIHono<AppEnv> {
  const app = newRouter();
  app.onError(onError);
  app.notFound((c) => c.json(errorBody('RouteNotFound', `no route for ${c.req.method} ${c.req.path}`), 404));

  app.use(
    '/api/*',
    bodyLimit({
      maxSize: deps.maxBodyBytes,
      onError: (c) => c.json(errorBody('PayloadTooLarge', `request body is larger than ${deps.maxBodyBytes} bytes`, { maxBytes: deps.maxBodyBytes }), 413),
    }),
  );
  app.route('/', executionRoutes(deps.executions));
  app.route('/', healthRoutes(deps));
  app.doc31('/api/v1/openapi.json', {
    openapi: '3.1.0',
    info: { title: 'Kiln API', version: '0.1.0', description: 'Run untrusted code: Lambda-style functions and long-lived sandboxes.' },
  });
  app.route('/', docsRoutes('/api/v1/openapi.json'));
  return app;
}
