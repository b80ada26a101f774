import type { MiddlewareHandler } from 'hono';
import { errorBody } from './errors.js';
import type { AppEnv } from './router.js';
import { hasScope, type Scope } from '../tenancy/principal.js';

/**
 * The scope each route needs, in one table, first match wins. A route nobody wrote a rule for
 * needs `admin`: a new route is closed until someone decides who may use it (and the tenancy
 * tests walk the OpenAPI document, so a new route is also attacked by them).
 */
const RULES: ReadonlyArray<{ methods: readonly string[] | '*'; path: RegExp; scope: Scope }> = [
  { methods: '*', path: /^\/api\/v1\/admin(\/|$)/, scope: 'admin' },
  { methods: '*', path: /^\/metrics$/, scope: 'admin' },
  { methods: ['GET', 'HEAD'], path: /^\/api\/v1\/templates(\/|$)/, scope: 'read' },
  // A tenant's egress secrets: listing (names, never values) is `read`; storing and deleting
  // configure what its sandboxes send, as deploying a function does (`functions`).
  { methods: ['GET', 'HEAD'], path: /^\/api\/v1\/secrets$/, scope: 'read' },
  { methods: ['PUT', 'DELETE'], path: /^\/api\/v1\/secrets\/[^/]+$/, scope: 'functions' },
  { methods: '*', path: /^\/api\/v1\/templates(\/|$)/, scope: 'admin' },
  // The pools' counts and start latencies: the deployment's, shared, named by template only.
  { methods: ['GET', 'HEAD'], path: /^\/api\/v1\/pools$/, scope: 'read' },
  { methods: ['POST'], path: /^\/api\/v1\/executions$/, scope: 'invoke' },
  { methods: ['GET', 'HEAD'], path: /^\/api\/v1\/executions(\/|$)/, scope: 'read' },
  { methods: ['POST'], path: /^\/api\/v1\/functions\/[^/]+\/(invocations|dead-letters\/[^/]+\/replay)$/, scope: 'invoke' },
  { methods: ['GET', 'HEAD'], path: /^\/api\/v1\/functions(\/|$)/, scope: 'read' },
  { methods: '*', path: /^\/api\/v1\/functions(\/|$)/, scope: 'functions' },
  // The terminal is an upgrade of a GET, but it writes to the sandbox like any process.
  { methods: '*', path: /^\/api\/v1\/sessions\/[^/]+\/pty$/, scope: 'sessions' },
  { methods: ['GET', 'HEAD'], path: /^\/api\/v1\/sessions(\/|$)/, scope: 'read' },
  { methods: '*', path: /^\/api\/v1\/sessions(\/|$)/, scope: 'sessions' },
  // Snapshots are sessions' workspaces: read with `read`, made and deleted with `sessions`.
  { methods: ['GET', 'HEAD'], path: /^\/api\/v1\/snapshots(\/|$)/, scope: 'read' },
  { methods: '*', path: /^\/api\/v1\/snapshots(\/|$)/, scope: 'sessions' },
  // Volumes hold sessions' data: read with `read`, made and deleted with `sessions`.
  { methods: ['GET', 'HEAD'], path: /^\/api\/v1\/volumes(\/|$)/, scope: 'read' },
  { methods: '*', path: /^\/api\/v1\/volumes(\/|$)/, scope: 'sessions' },
  // E2B's control API (api/e2b/): sandboxes are sessions. Its sandbox routes take a sandbox's access token, not a key.
  { methods: ['GET', 'HEAD'], path: /^\/e2b\//, scope: 'read' },
  { methods: '*', path: /^\/e2b\//, scope: 'sessions' },
  { methods: ['POST'], path: /^\/2015-03-31\/functions\/[^/]+\/invocations$/, scope: 'invoke' },
  { methods: ['GET', 'HEAD'], path: /^\/2015-03-31\//, scope: 'read' },
  { methods: '*', path: /^\/2015-03-31\//, scope: 'functions' },
  // Function URL configs (2021-10-31): reading them is `read`, changing them deploys (`functions`).
  { methods: ['GET', 'HEAD'], path: /^\/2021-10-31\/functions\/[^/]+\/urls?$/, scope: 'read' },
  { methods: '*', path: /^\/2021-10-31\/functions\/[^/]+\/url$/, scope: 'functions' },
  // InvokeWithResponseStream (2021-11-15) is an invoke; tags (2017-03-31), reserved concurrency
  // (2017-10-31), account settings (2016-08-19) and event invoke configs (2019-09-25) are read
  // with `read` and changed with `functions`, like the function they belong to.
  { methods: ['POST'], path: /^\/2021-11-15\/functions\/[^/]+\/response-streaming-invocations$/, scope: 'invoke' },
  { methods: ['GET', 'HEAD'], path: /^\/(2017-03-31\/tags|2017-10-31\/functions|2019-09-30\/functions|2016-08-19\/account-settings|2019-09-25\/functions)(\/|$)/, scope: 'read' },
  { methods: '*', path: /^\/(2017-03-31\/tags|2017-10-31\/functions|2019-09-30\/functions|2019-09-25\/functions)\//, scope: 'functions' },
];

/** The scope a request needs (MCP checks per tool: its route needs only a key). */
export function scopeOf(method: string, path: string): Scope {
  const m = method.toUpperCase();
  for (const r of RULES) if ((r.methods === '*' || r.methods.includes(m)) && r.path.test(path)) return r.scope;
  return 'admin';
}

/** 403 `Forbidden` (Lambda: AccessDeniedException) unless the request's key has the route's scope. */
export function requireRouteScope(shape: 'kiln' | 'lambda' = 'kiln', skip: (path: string) => boolean = () => false): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (skip(c.req.path)) return next();
    const p = c.get('principal');
    const scope = scopeOf(c.req.method, c.req.path);
    if (p && hasScope(p, scope)) return next();
    const message = `this key${p ? ` (${p.keyId})` : ''} does not have the "${scope}" scope this request needs`;
    if (shape === 'lambda') {
      c.header('x-amzn-ErrorType', 'AccessDeniedException');
      return c.json({ Type: 'User', message, Message: message }, 403);
    }
    return c.json(errorBody('Forbidden', message, { scope }), 403);
  };
}
