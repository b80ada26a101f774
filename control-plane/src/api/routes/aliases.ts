import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import type { AliasService, AliasSettings } from '../../functions/aliases.js';
import { functionArn } from '../../functions/arn.js';
import type { AliasRecord } from '../../functions/types.js';
import { newRouter, type AppEnv } from '../router.js';
import { errors, json, nameParam, tenantQuery } from './functions.js';

const weights = z.record(z.number()).openapi({ description: 'At most one published version → the share (0.0-1.0) of invocations it gets instead of functionVersion, which must then be a published version too. `{}` removes the routing.', example: { '2': 0.1 } });

const AliasSchema = z
  .object({
    name: z.string(),
    arn: z.string().openapi({ description: 'The alias ARN (what `context.invokedFunctionArn` shows when it is invoked)' }),
    functionVersion: z.string().openapi({ description: '$LATEST or a published version' }),
    description: z.string(),
    additionalVersionWeights: weights,
    revisionId: z.string(),
  })
  .openapi('FunctionAlias');
const CreateSchema = z
  .object({
    name: z.string().openapi({ description: 'Letters, digits, dashes and underscores, not only digits (1-128)', example: 'live' }),
    functionVersion: z.string().openapi({ example: '1' }),
    description: z.string().optional(),
    additionalVersionWeights: weights.optional(),
  })
  .strict()
  .openapi('FunctionAliasCreate');
const UpdateSchema = z
  .object({
    functionVersion: z.string().optional(),
    description: z.string().optional(),
    additionalVersionWeights: weights.optional(),
    revisionId: z.string().optional().openapi({ description: 'Only if the alias is still this revision (else 412 PreconditionFailed)' }),
  })
  .strict()
  .openapi('FunctionAliasUpdate');

const aliasParams = nameParam.extend({ alias: z.string().openapi({ param: { name: 'alias', in: 'path' }, example: 'live' }) });
const aliasErrors = { ...errors, 412: { description: 'PreconditionFailed: revisionId is not the alias\'s current one', content: errors[400].content } };
const body = <T extends z.ZodTypeAny>(schema: T) => ({ required: true, content: { 'application/json': { schema } } });

const routes = {
  create: createRoute({ method: 'post', path: '/api/v1/functions/{name}/aliases', tags: ['functions'], summary: 'Create an alias of a function ($LATEST or a published version, optionally weighted to a second version)', request: { params: nameParam, query: tenantQuery, body: body(CreateSchema) }, responses: { 201: json(AliasSchema, 'Created'), ...aliasErrors } }),
  list: createRoute({
    method: 'get',
    path: '/api/v1/functions/{name}/aliases',
    tags: ['functions'],
    summary: 'List a function\'s aliases in name order',
    request: { params: nameParam, query: tenantQuery.extend({ functionVersion: z.string().optional().openapi({ description: 'Only aliases that run this version' }), marker: z.string().optional(), maxItems: z.coerce.number().int().min(1).max(10000).optional() }) },
    responses: { 200: json(z.object({ aliases: z.array(AliasSchema), nextMarker: z.string().optional() }), 'A page of aliases'), ...aliasErrors },
  }),
  get: createRoute({ method: 'get', path: '/api/v1/functions/{name}/aliases/{alias}', tags: ['functions'], summary: 'Get an alias', request: { params: aliasParams, query: tenantQuery }, responses: { 200: json(AliasSchema, 'The alias'), ...aliasErrors } }),
  update: createRoute({ method: 'put', path: '/api/v1/functions/{name}/aliases/{alias}', tags: ['functions'], summary: 'Change what an alias points at (absent fields keep their value)', request: { params: aliasParams, query: tenantQuery, body: body(UpdateSchema) }, responses: { 200: json(AliasSchema, 'The updated alias'), ...aliasErrors } }),
  delete: createRoute({
    method: 'delete',
    path: '/api/v1/functions/{name}/aliases/{alias}',
    tags: ['functions'],
    summary: 'Delete an alias',
    request: { params: aliasParams, query: tenantQuery.extend({ revisionId: z.string().optional().openapi({ description: 'Only if the alias is still this revision (else 412)' }) }) },
    responses: { 204: { description: 'Deleted' }, ...aliasErrors },
  }),
};

function settingsOf(b: { functionVersion?: string | undefined; description?: string | undefined; additionalVersionWeights?: Record<string, number> | undefined }): AliasSettings {
  return {
    ...(b.functionVersion !== undefined ? { functionVersion: b.functionVersion } : {}),
    ...(b.description !== undefined ? { description: b.description } : {}),
    ...(b.additionalVersionWeights !== undefined ? { additionalVersionWeights: b.additionalVersionWeights } : {}),
  };
}

/** REST equivalents of Lambda's alias operations, under the function they belong to. Thin edge. */
export function aliasRoutes(aliases: AliasService): OpenAPIHono<AppEnv> {
  const app = newRouter();
  /** The service found the function for the caller, so its tenant is the one named or the key's own. */
  const view = (tenant: string, fn: string, a: AliasRecord): z.infer<typeof AliasSchema> => ({ ...a, arn: functionArn(tenant, fn, a.name) });
  app.openapi(routes.create, async (c) => {
    const { name } = c.req.valid('param');
    const { tenant } = c.req.valid('query');
    const b = c.req.valid('json');
    const alias = await aliases.create(c.get('principal'), { name, tenant }, b.name, settingsOf(b));
    return c.json(view(tenant ?? c.get('principal').tenant, name, alias), 201);
  });
  app.openapi(routes.list, async (c) => {
    const { name } = c.req.valid('param');
    const q = c.req.valid('query');
    const page = await aliases.list(c.get('principal'), { name, tenant: q.tenant }, q);
    const tenant = q.tenant ?? c.get('principal').tenant;
    return c.json({ aliases: page.aliases.map((a) => view(tenant, name, a)), ...(page.nextMarker ? { nextMarker: page.nextMarker } : {}) }, 200);
  });
  app.openapi(routes.get, async (c) => {
    const { name, alias } = c.req.valid('param');
    const { tenant } = c.req.valid('query');
    return c.json(view(tenant ?? c.get('principal').tenant, name, await aliases.get(c.get('principal'), { name, tenant }, alias)), 200);
  });
  app.openapi(routes.update, async (c) => {
    const { name, alias } = c.req.valid('param');
    const { tenant } = c.req.valid('query');
    const b = c.req.valid('json');
    const updated = await aliases.update(c.get('principal'), { name, tenant }, alias, settingsOf(b), b.revisionId);
    return c.json(view(tenant ?? c.get('principal').tenant, name, updated), 200);
  });
  app.openapi(routes.delete, async (c) => {
    const { name, alias } = c.req.valid('param');
    const q = c.req.valid('query');
    await aliases.delete(c.get('principal'), { name, tenant: q.tenant }, alias, q.revisionId);
    return c.body(null, 204);
  });
  return app;
}
