import { OpenAPIHono } from '@hono/zod-openapi';
import { errorBody } from './errors.js';

export type AppEnv = Record<string, never>;

/**
 * Every router is made here so that each carries the same validation hook: a failed zod
 * check becomes our error body (code InvalidRequest, the first problem as the message).
 */
export function newRouter(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result, c) => {
      if (result.success) return;
      const issue = result.error.issues[0];
      const where = issue?.path.join('.') || 'body';
      const missing = issue?.code === 'invalid_type' && issue.received === 'undefined';
      const message = missing ? `${where} is required` : `${where}: ${issue?.message ?? 'invalid'}`;
      return c.json(errorBody('InvalidRequest', message, { issues: result.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) }), 400);
    },
  });
}
