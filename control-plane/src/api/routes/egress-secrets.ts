import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import { SecretInputSchema, SecretNameParam, type SecretStore } from '../../egress/secrets.js';
import { newRouter, type AppEnv } from '../router.js';
import { ErrorSchema } from '../schemas.js';

const json = <T extends z.ZodTypeAny>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });
const err = (description: string) => json(ErrorSchema, description);
const errors = { 400: err('Invalid request'), 403: err('Not an administrator key'), 404: err('Unknown secret') };
const tenantErrors = { 400: err('Invalid request'), 403: err('The key lacks the scope (read to list; functions to store or delete)'), 404: err('Unknown secret') };

const Params = z.object({ id: z.string().min(1).max(64).openapi({ param: { name: 'id', in: 'path' } }) });
const NameParams = Params.extend({ name: SecretNameParam.openapi({ param: { name: 'name', in: 'path' } }) });
const OwnName = z.object({ name: SecretNameParam.openapi({ param: { name: 'name', in: 'path' } }) });
const SecretSchema = z.object({ name: z.string(), hosts: z.array(z.string()), header: z.string(), format: z.string(), https: z.boolean(), updatedAt: z.string() }).openapi('EgressSecret');
const ListSchema = z.object({ secrets: z.array(SecretSchema) });

const routes = {
  put: createRoute({
    method: 'put',
    path: '/api/v1/admin/tenants/{id}/secrets/{name}',
    tags: ['admin'],
    summary: "Store a tenant's egress secret (sealed at rest; never readable back)",
    request: { params: NameParams, body: { required: true, content: { 'application/json': { schema: SecretInputSchema } } } },
    responses: { 200: json(SecretSchema, 'Stored (without its value)'), ...errors },
  }),
  list: createRoute({ method: 'get', path: '/api/v1/admin/tenants/{id}/secrets', tags: ['admin'], summary: "A tenant's egress secrets, without values", request: { params: Params }, responses: { 200: json(ListSchema, 'Secrets'), ...errors } }),
  delete: createRoute({ method: 'delete', path: '/api/v1/admin/tenants/{id}/secrets/{name}', tags: ['admin'], summary: "Delete a tenant's egress secret (sessions it is bound to keep it until they end)", request: { params: NameParams }, responses: { 204: { description: 'Deleted' }, ...errors } }),
};

/**
 * The same store for the key's own tenant: a tenant manages its secrets without an
 * administrator. The name space is the key's tenant and nothing else (no tenant in the path or
 * query), so no key reaches another tenant's secrets, by name or by listing.
 */
const own = {
  put: createRoute({
    method: 'put',
    path: '/api/v1/secrets/{name}',
    tags: ['secrets'],
    summary: "Store one of your tenant's egress secrets (sealed at rest; never readable back)",
    description:
      'Sessions (`secrets` at create, or POST /api/v1/sessions/{id}/secrets) and functions (`secrets` in their configuration) of this tenant name it; the sandbox gets only a placeholder, and Kiln\'s egress proxy puts `format` into `header` on requests to `hosts` (plain HTTP; HTTPS too with `https: true`). Replacing a secret changes what sandboxes bound from then on get.',
    request: { params: OwnName, body: { required: true, content: { 'application/json': { schema: SecretInputSchema } } } },
    responses: { 200: json(SecretSchema, 'Stored (without its value)'), ...tenantErrors },
  }),
  list: createRoute({ method: 'get', path: '/api/v1/secrets', tags: ['secrets'], summary: "Your tenant's egress secrets: names and bindings, never values", responses: { 200: json(ListSchema, 'Secrets'), ...tenantErrors } }),
  delete: createRoute({ method: 'delete', path: '/api/v1/secrets/{name}', tags: ['secrets'], summary: "Delete one of your tenant's egress secrets (sandboxes it is bound to keep it until they end)", request: { params: OwnName }, responses: { 204: { description: 'Deleted' }, ...tenantErrors } }),
};

/** Thin edge over SecretStore: the admin routes (scopes.ts: `admin`) and the tenant's own (`read` to list, `functions` to change). */
export function egressSecretRoutes(secrets: SecretStore): OpenAPIHono<AppEnv> {
  const app = newRouter();
  app.openapi(routes.put, async (c) => {
    const { id, name } = c.req.valid('param');
    return c.json(await secrets.put(id, name, c.req.valid('json')), 200);
  });
  app.openapi(routes.list, async (c) => c.json({ secrets: await secrets.list(c.req.valid('param').id) }, 200));
  app.openapi(routes.delete, async (c) => {
    const { id, name } = c.req.valid('param');
    await secrets.delete(id, name);
    return c.body(null, 204);
  });
  app.openapi(own.put, async (c) => c.json(await secrets.put(c.get('principal').tenant, c.req.valid('param').name, c.req.valid('json')), 200));
  app.openapi(own.list, async (c) => c.json({ secrets: await secrets.list(c.get('principal').tenant) }, 200));
  app.openapi(own.delete, async (c) => {
    await secrets.delete(c.get('principal').tenant, c.req.valid('param').name);
    return c.body(null, 204);
  });
  return app;
}
