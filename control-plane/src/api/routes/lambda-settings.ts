import { Hono, type Context } from 'hono';
import type { Redis } from 'ioredis';
import { bodyLimit } from 'hono/body-limit';
import { z } from 'zod';
import { ValidationError } from '../../errors.js';
import type { FunctionExtras } from '../../functions/settings.js';
import type { FunctionRef } from '../../functions/types.js';
import { lambdaError, onLambdaError } from '../lambda/errors.js';
import { lambdaTarget, parseBody, parseFunctionName } from '../lambda/shapes.js';
import { redisGuard } from '../redis-guard.js';
import type { AppEnv } from '../router.js';

/** A settings request is small JSON; Lambda's own limit for such calls is far above what any needs. */
const MAX_SETTINGS_BYTES = 256 * 1024;

const ConcurrencyInput = z.object({ ReservedConcurrentExecutions: z.unknown() }).passthrough();
const TagInput = z.object({ Tags: z.record(z.unknown()) }).passthrough();

/** The function a per-function setting names: never a qualifier (Lambda keeps these per function). */
function unqualified(c: Context): FunctionRef {
  const { fn, qualifier } = lambdaTarget(c);
  if (qualifier !== undefined) throw new ValidationError('this setting belongs to the function, not to a version or alias: name it without a qualifier', { field: 'FunctionName' });
  return fn;
}

/** The function a tags call names by its ARN (or name), unqualified as Lambda wants it. */
function tagTarget(c: Context): FunctionRef {
  const raw = decodeURIComponent(c.req.param('arn') ?? '');
  const parsed = parseFunctionName(raw);
  if (parsed.qualifier !== undefined) throw new ValidationError('tags belong to the function: use its unqualified ARN', { field: 'Resource' });
  return { name: parsed.name, tenant: parsed.tenant };
}

/**
 * Lambda's per-function settings and account settings: reserved concurrency
 * (Put/Get/DeleteFunctionConcurrency), GetAccountSettings and tags (TagResource, UntagResource,
 * ListTags). Thin edge over functions/settings.ts, which finds every function for the caller (its
 * own tenant's only; another's is ResourceNotFoundException, as a missing one).
 */
export function lambdaSettingsRoutes(extras: FunctionExtras, redis?: Redis): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.onError(onLambdaError);
  for (const family of ['/2017-10-31/*', '/2019-09-30/*', '/2016-08-19/*', '/2017-03-31/*']) if (redis) app.use(family, redisGuard(redis, []));
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
  return app;
}
