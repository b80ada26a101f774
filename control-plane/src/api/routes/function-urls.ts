import { Hono, type Context } from 'hono';
import type { Redis } from 'ioredis';
import { bodyLimit } from 'hono/body-limit';
import { z } from 'zod';
import { invokedFunctionArn } from '../../functions/arn.js';
import type { FunctionUrlRecord, FunctionUrlService } from '../../functions/urls.js';
import { lambdaError, onLambdaError } from '../lambda/errors.js';
import { lambdaTarget, maxItemsOf, parseBody } from '../lambda/shapes.js';
import { redisGuard } from '../redis-guard.js';
import type { AppEnv } from '../router.js';
import { URL_PATH_PREFIX } from './function-url-serve.js';

const BASE = '/2021-10-31/functions';
const MAX_BODY_BYTES = 64 * 1024;

const CorsShape = z
  .object({
    AllowCredentials: z.boolean().optional(),
    AllowHeaders: z.array(z.string()).optional(),
    AllowMethods: z.array(z.string()).optional(),
    AllowOrigins: z.array(z.string()).optional(),
    ExposeHeaders: z.array(z.string()).optional(),
    MaxAge: z.number().optional(),
  })
  .passthrough();
const UrlInput = z.object({ AuthType: z.string().optional(), Cors: CorsShape.optional(), InvokeMode: z.string().optional() }).passthrough();

/** A record as Lambda's FunctionUrlConfig (CreateFunctionUrlConfig's answer has no LastModifiedTime). */
function config(c: Context, r: FunctionUrlRecord, withModified = true): Record<string, unknown> {
  return {
    FunctionUrl: functionUrl(c, r.id),
    FunctionArn: invokedFunctionArn(r.tenant, r.name, r.qualifier || undefined),
    AuthType: r.authType,
    ...(r.cors ? { Cors: r.cors } : {}),
    CreationTime: r.creationTime,
    ...(withModified ? { LastModifiedTime: r.lastModifiedTime } : {}),
    InvokeMode: r.invokeMode,
  };
}

/**
 * The URL a config is served at: the path form under the base URL this request came to (the
 * Host form `<id>.lambda-url.<domain>` works as well where wildcard DNS points at Kiln).
 */
export function functionUrl(c: Context, id: string): string {
  return `${new URL(c.req.url).origin}${URL_PATH_PREFIX}${id}/`;
}



/**
 * Lambda's function URL configs (API version 2021-10-31) as the AWS SDK sends them: create, get,
 * update, delete one (`?Qualifier=` an alias), list a function's. Thin edge over
 * FunctionUrlService; authentication and scopes are app.ts's, as for /2015-03-31.
 */
export function functionUrlRoutes(urls: FunctionUrlService, redis?: Redis): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.onError(onLambdaError);
  if (redis) app.use(`${BASE}/*`, redisGuard(redis, []));
  const limit = bodyLimit({ maxSize: MAX_BODY_BYTES, onError: (c) => lambdaError(c, 'RequestTooLargeException', 413, `request body is larger than ${MAX_BODY_BYTES} bytes`) });
  const input = async (c: Context) => {
    const body = parseBody(UrlInput, await c.req.text());
    return { authType: body.AuthType, cors: body.Cors, invokeMode: body.InvokeMode };
  };

  app.post(`${BASE}/:name/url`, limit, async (c) => {
    const { fn, qualifier } = lambdaTarget(c);
    const r = await urls.create(c.get('principal'), fn, qualifier, await input(c));
    return c.json(config(c, r, false), 201);
  });
  app.get(`${BASE}/:name/url`, async (c) => {
    const { fn, qualifier } = lambdaTarget(c);
    return c.json(config(c, await urls.get(c.get('principal'), fn, qualifier)));
  });
  app.put(`${BASE}/:name/url`, limit, async (c) => {
    const { fn, qualifier } = lambdaTarget(c);
    return c.json(config(c, await urls.update(c.get('principal'), fn, qualifier, await input(c))));
  });
  app.delete(`${BASE}/:name/url`, async (c) => {
    const { fn, qualifier } = lambdaTarget(c);
    await urls.delete(c.get('principal'), fn, qualifier);
    return c.body(null, 204);
  });
  app.get(`${BASE}/:name/urls`, async (c) => {
    const { fn } = lambdaTarget(c);
    const page = await urls.list(c.get('principal'), fn, c.req.query('Marker') || undefined, maxItemsOf(c, 50));
    return c.json({ FunctionUrlConfigs: page.records.map((r) => config(c, r)), ...(page.nextMarker ? { NextMarker: page.nextMarker } : {}) });
  });
  return app;
}
