import { Hono, type Context, type MiddlewareHandler } from 'hono';
import type { Redis } from 'ioredis';
import { bodyLimit } from 'hono/body-limit';
import { z } from 'zod';
import { ValidationError } from '../../errors.js';
import type { FunctionExtras } from '../../functions/settings.js';
import type { FunctionRef } from '../../functions/types.js';
import { lambdaError, onLambdaError } from '../lambda/errors.js';
import { lambdaTarget, maxItemsOf, parseBody, parseFunctionName } from '../lambda/shapes.js';
import { invokedFunctionArn } from '../../functions/arn.js';
import type { EventInvokeConfig, EventInvokeConfigs } from '../../functions/event-invoke.js';
import { redisGuard } from '../redis-guard.js';
import type { AppEnv } from '../router.js';

/** A settings request is small JSON; Lambda's own limit for such calls is far above what any needs. */
const MAX_SETTINGS_BYTES = 256 * 1024;

const ConcurrencyInput = z.object({ ReservedConcurrentExecutions: z.unknown() }).passthrough();
const TagInput = z.object({ Tags: z.record(z.unknown()) }).passthrough();
const EventInvokeInput = z.object({ MaximumRetryAttempts: z.unknown(), MaximumEventAgeInSeconds: z.unknown(), DestinationConfig: z.unknown() }).partial().passthrough();

/** The function a per-function setting names: never a qualifier (Lambda keeps these per function). */
function unqualified(c: Context): FunctionRef {
  const { fn, qualifier } = lambdaTarget(c);
  if (qualifier !== undefined) throw new ValidationError('this setting belongs to the function, not to a version or alias: name it without a qualifier', { field: 'FunctionName' });
  return fn;
}

/** The function a tags call names by its ARN (or name), unqualified as Lambda wants it. */
function tagTarget(c: Context): FunctionRef {
  // Hono hands the parameter decoded; an ARN holds no `%`, so one left is a bad request, not ours to decode.
  const raw = c.req.param('arn') ?? '';
  if (raw.includes('%')) throw new ValidationError('Resource must be a function ARN', { field: 'Resource' });
  const parsed = parseFunctionName(raw);
  if (parsed.qualifier !== undefined) throw new ValidationError('tags belong to the function: use its unqualified ARN', { field: 'Resource' });
  return { name: parsed.name, tenant: parsed.tenant };
}

/**
 * Lambda's per-function settings and account settings: reserved concurrency
 * (Put/Get/DeleteFunctionConcurrency), GetAccountSettings, tags (TagResource, UntagResource,
 * ListTags) and event invoke configs (functions/event-invoke.ts). Thin edge over functions/settings.ts, which finds every function for the caller (its
 * own tenant's only; another's is ResourceNotFoundException, as a missing one).
 */
export function lambdaSettingsRoutes(extras: FunctionExtras, eventConfigs?: EventInvokeConfigs, redis?: Redis): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.onError(onLambdaError);
  for (const family of ['/2017-10-31/*', '/2019-09-30/*', '/2016-08-19/*', '/2017-03-31/*', '/2019-09-25/*']) if (redis) app.use(family, redisGuard(redis, []));
  const limit = bodyLimit({ maxSize: MAX_SETTINGS_BYTES, onError: (c) => lambdaError(c, 'RequestTooLargeException', 413, `request body is larger than ${MAX_SETTINGS_BYTES} bytes`) });

  app.put('/2017-10-31/functions/:name/concurrency', limit, async (c) => {
    const fn = unqualified(c);
    const input = parseBody(ConcurrencyInput, await c.req.text());
    return c.json({ ReservedConcurrentExecutions: await extras.putConcurrency(c.get('principal'), fn, input.ReservedConcurrentExecutions) });
  });
  app.get('/2019-09-30/functions/:name/concurrency', async (c) => {
    const n = await extras.concurrency(c.get('principal'), unqualified(c));
    return c.json(n === undefined ? {} : { ReservedConcurrentExecutions: n });
  });
  app.delete('/2017-10-31/functions/:name/concurrency', async (c) => {
    await extras.deleteConcurrency(c.get('principal'), unqualified(c));
    return c.body(null, 204);
  });

  const account = async (c: Context<AppEnv>) => {
    const a = await extras.account(c.get('principal'));
    // Kiln's own limits where Lambda has them: the zip (50 MB) and unzipped (250 MB) code sizes; no total.
    return c.json({
      AccountLimit: { TotalCodeSize: Number.MAX_SAFE_INTEGER, CodeSizeUnzipped: 250 * 1024 * 1024, CodeSizeZipped: 50 * 1024 * 1024, ConcurrentExecutions: a.concurrentExecutions, UnreservedConcurrentExecutions: a.unreservedConcurrentExecutions },
      AccountUsage: { TotalCodeSize: a.totalCodeSize, FunctionCount: a.functionCount },
    });
  };
  app.get('/2016-08-19/account-settings', account);
  app.get('/2016-08-19/account-settings/', account);

  app.get('/2017-03-31/tags/:arn', async (c) => c.json({ Tags: await extras.tags(c.get('principal'), tagTarget(c)) }));
  app.post('/2017-03-31/tags/:arn', limit, async (c) => {
    const fn = tagTarget(c);
    const input = parseBody(TagInput, await c.req.text());
    await extras.tag(c.get('principal'), fn, input.Tags);
    return c.body(null, 204);
  });
  app.delete('/2017-03-31/tags/:arn', async (c) => {
    const keys = c.req.queries('tagKeys') ?? [];
    await extras.untag(c.get('principal'), tagTarget(c), keys);
    return c.body(null, 204);
  });
  if (eventConfigs) eventInvokeConfigRoutes(app, eventConfigs, limit);
  return app;
}

/** FunctionEventInvokeConfig as Lambda shows it: LastModified in epoch seconds, the ARN always qualified. */
function eventInvokeShape(c: EventInvokeConfig): Record<string, unknown> {
  return {
    LastModified: c.lastModified / 1000,
    FunctionArn: invokedFunctionArn(c.tenant, c.name, c.qualifier),
    ...(c.maximumRetryAttempts !== undefined ? { MaximumRetryAttempts: c.maximumRetryAttempts } : {}),
    ...(c.maximumEventAgeInSeconds !== undefined ? { MaximumEventAgeInSeconds: c.maximumEventAgeInSeconds } : {}),
    DestinationConfig: {
      ...(c.destinations?.onSuccess ? { OnSuccess: { Destination: c.destinations.onSuccess } } : {}),
      ...(c.destinations?.onFailure ? { OnFailure: { Destination: c.destinations.onFailure } } : {}),
    },
  };
}

/** Put/Update/Get/Delete/ListFunctionEventInvokeConfig(s) (2019-09-25), over functions/event-invoke.ts. */
function eventInvokeConfigRoutes(app: Hono<AppEnv>, configs: EventInvokeConfigs, limit: MiddlewareHandler): void {
  const BASE = '/2019-09-25/functions/:name/event-invoke-config';
  const write = (merge: boolean) => async (c: Context<AppEnv>) => {
    const { fn, qualifier } = lambdaTarget(c);
    const input = parseBody(EventInvokeInput, await c.req.text());
    return c.json(eventInvokeShape(await configs.put(c.get('principal'), fn, qualifier, input, merge)));
  };
  app.put(BASE, limit, write(false));
  app.post(BASE, limit, write(true));
  app.get(BASE, async (c) => {
    const { fn, qualifier } = lambdaTarget(c);
    return c.json(eventInvokeShape(await configs.get(c.get('principal'), fn, qualifier)));
  });
  app.delete(BASE, async (c) => {
    const { fn, qualifier } = lambdaTarget(c);
    await configs.delete(c.get('principal'), fn, qualifier);
    return c.body(null, 204);
  });
  app.get(`${BASE}/list`, async (c) => {
    const { fn, qualifier } = lambdaTarget(c);
    if (qualifier !== undefined) throw new ValidationError('ListFunctionEventInvokeConfigs takes the function without a qualifier', { field: 'FunctionName' });
    const page = await configs.list(c.get('principal'), fn, c.req.query('Marker') || undefined, maxItemsOf(c, 50) ?? 50);
    return c.json({ FunctionEventInvokeConfigs: page.configs.map(eventInvokeShape), ...(page.nextMarker ? { NextMarker: page.nextMarker } : {}) });
  });
}
