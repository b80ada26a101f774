import type { Context, Hono, MiddlewareHandler } from 'hono';
import { z } from 'zod';
import { ValidationError } from '../../errors.js';
import type { AliasService, AliasSettings } from '../../functions/aliases.js';
import { functionArn } from '../../functions/arn.js';
import type { AliasRecord, FunctionRef } from '../../functions/types.js';
import type { AppEnv } from '../router.js';
import { parseBody, parseFunctionName } from './shapes.js';

const RoutingConfig = z.object({ AdditionalVersionWeights: z.record(z.number()).optional() }).passthrough();
const CreateAliasInput = z.object({ Name: z.string(), FunctionVersion: z.string(), Description: z.string().optional(), RoutingConfig: RoutingConfig.optional() }).passthrough();
const UpdateAliasInput = z.object({ FunctionVersion: z.string().optional(), Description: z.string().optional(), RoutingConfig: RoutingConfig.optional(), RevisionId: z.string().optional() }).passthrough();

/** An alias as Lambda's AliasConfiguration; `tenant` and `fn` are the function's. */
export function aliasConfiguration(tenant: string, fn: string, a: AliasRecord): Record<string, unknown> {
  const weights = Object.keys(a.additionalVersionWeights).length ? { RoutingConfig: { AdditionalVersionWeights: a.additionalVersionWeights } } : {};
  return { AliasArn: functionArn(tenant, fn, a.name), Name: a.name, FunctionVersion: a.functionVersion, Description: a.description, ...weights, RevisionId: a.revisionId };
}

function settingsOf(input: { FunctionVersion?: string | undefined; Description?: string | undefined; RoutingConfig?: { AdditionalVersionWeights?: Record<string, number> | undefined } | undefined }): AliasSettings {
  return {
    ...(input.FunctionVersion !== undefined ? { functionVersion: input.FunctionVersion } : {}),
    ...(input.Description !== undefined ? { description: input.Description } : {}),
    // RoutingConfig given without weights clears the routing, as on AWS.
    ...(input.RoutingConfig !== undefined ? { additionalVersionWeights: input.RoutingConfig.AdditionalVersionWeights ?? {} } : {}),
  };
}

/** The function of the path: a name or ARN (whose account id is the tenant); a qualifier is refused. */
function fnOf(c: Context): FunctionRef {
  const parsed = parseFunctionName(c.req.param('name') ?? '');
  if (parsed.qualifier !== undefined) throw new ValidationError('FunctionName of an alias operation must not carry a qualifier', { field: 'FunctionName' });
  return { name: parsed.name, tenant: parsed.tenant };
}

const aliasOf = (c: Context) => c.req.param('alias') ?? '';

function maxItemsOf(c: Context): number | undefined {
  const raw = c.req.query('MaxItems');
  return raw === undefined ? undefined : Number(raw);
}

/**
 * Lambda's alias operations (CreateAlias, GetAlias, ListAliases, UpdateAlias, DeleteAlias) on
 * the Lambda routes' app, so they share its error mapping and Redis guard. The caller's tenant
 * is the alias's function's, looked up as every other Lambda route does.
 */
export function lambdaAliasRoutes(app: Hono<AppEnv>, base: string, aliases: AliasService, managementLimit: MiddlewareHandler): void {
  /** The ARN's tenant: the function's, which the service found (so the caller may reach it). */
  const arnOf = (c: Context<AppEnv>, fn: FunctionRef) => fn.tenant ?? c.get('principal').tenant;
  app.post(`${base}/:name/aliases`, managementLimit, async (c) => {
    const fn = fnOf(c);
    const input = parseBody(CreateAliasInput, await c.req.text());
    const alias = await aliases.create(c.get('principal'), fn, input.Name, settingsOf(input));
    return c.json(aliasConfiguration(arnOf(c, fn), fn.name, alias), 201);
  });
  app.get(`${base}/:name/aliases`, async (c) => {
    const fn = fnOf(c);
    const page = await aliases.list(c.get('principal'), fn, { functionVersion: c.req.query('FunctionVersion') || undefined, marker: c.req.query('Marker') || undefined, maxItems: maxItemsOf(c) });
    const tenant = arnOf(c, fn);
    return c.json({ Aliases: page.aliases.map((a) => aliasConfiguration(tenant, fn.name, a)), ...(page.nextMarker ? { NextMarker: page.nextMarker } : {}) });
  });
  app.get(`${base}/:name/aliases/:alias`, async (c) => {
    const fn = fnOf(c);
    return c.json(aliasConfiguration(arnOf(c, fn), fn.name, await aliases.get(c.get('principal'), fn, aliasOf(c))));
  });
  app.put(`${base}/:name/aliases/:alias`, managementLimit, async (c) => {
    const fn = fnOf(c);
    const input = parseBody(UpdateAliasInput, await c.req.text());
    const alias = await aliases.update(c.get('principal'), fn, aliasOf(c), settingsOf(input), input.RevisionId);
    return c.json(aliasConfiguration(arnOf(c, fn), fn.name, alias));
  });
  app.delete(`${base}/:name/aliases/:alias`, async (c) => {
    const fn = fnOf(c);
    await aliases.delete(c.get('principal'), fn, aliasOf(c), c.req.query('RevisionId') || undefined);
    return c.body(null, 204);
  });
}
