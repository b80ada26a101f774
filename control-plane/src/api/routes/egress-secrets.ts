import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import { SecretInputSchema, SecretNameParam, type SecretStore } from '../../egress/secrets.js';
import { newRouter, type AppEnv } from '../router.js';
import { ErrorSchema } from '../schemas.js';

const json = <T extends z.ZodTypeAny>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });
const err = (description: string) => json(ErrorSchema, description);
const errors = { 400: err('Invalid request'), 403: err('Not an administrator key'), 404: err('Unknown secret') };

const Params = z.object({ id: z.string().min(1).max(64).openapi({ param: { name: 'id', in: 'path' } }) });
const NameParams = Params.extend({ name: SecretNameParam.openapi({ param: { name: 'name', in: 'path' } }) });
const SecretSchema = z.object({ name: z.string(), hosts: z.array(z.string()), header: z.string(), format: z.string(), updatedAt: z.string() }).openapi('EgressSecret');

const routes = {
  put: createRoute({
    method: 'put',
    path: '/api/v1/admin/tenants/{id}/secrets/{name}',
    tags: ['admin'],
    summary: "Store a tenant's egress secret (sealed at rest; never readable back)",
    request: { params: NameParams, body: { required: true, content: { 'application/json': { schema: SecretInputSchema } } } },
    responses: { 200: json(SecretSchema, 'Stored (without its value)'), ...errors },
  }),
  list: createRoute({ method: 'get', path: '/api/v1/admin/tenants/{id}/secrets', tags: ['admin'], summary: "A tenant's egress secrets, without values", request: { params: Params }, responses: { 200: json(z.object({ secrets: z.array(SecretSchema) }), 'Secrets'), ...errors } }),
  delete: createRoute({ method: 'delete', path: '/api/v1/admin/tenants/{id}/secrets/{name}', tags: ['admin'], summary: "Delete a tenant's egress secret (sessions it is bound to keep it until they end)", request: { params: NameParams }, responses: { 204: { description: 'Deleted' }, ...errors } }),
};

/** Thin edge over SecretStore (administrators only: scopes.ts puts /api/v1/admin under `admin`). */
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
  return app;
}
