import { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { errorBody } from './errors.js';
import type { Principal } from '../tenancy/principal.js';

/** `principal`: who the request acts as, set by the authentication middleware (auth.ts). */
export type AppEnv = { Variables: { principal: Principal } };

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

/** A 200 whose JSON body the route serialised itself, sent as `c.json` would send it. */
export function jsonText(c: Context, text: string): Response {
  c.header('Content-Type', 'application/json');
  return c.body(text, 200);
}
