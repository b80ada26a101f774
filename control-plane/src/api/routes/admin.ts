import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import type { Keyring } from '../../tenancy/keyring.js';
import { SCOPES, TENANT_ID } from '../../tenancy/principal.js';
import { newRouter, type AppEnv } from '../router.js';
import { ErrorSchema } from '../schemas.js';

/**
 * Quota overrides an administrator sets on a tenant (tenancy/quotas.ts applies them; absent ones
 * take the deployment's defaults). 0 means none allowed.
 */
const QuotasSchema = z
  .object({
    sessions: z.number().int().min(0).max(1_000_000).optional().describe('concurrent sessions (default KILN_QUOTA_SESSIONS)'),
    executions: z.number().int().min(0).max(1_000_000).optional().describe('concurrent executions: queued + running, sync and async (default KILN_QUOTA_EXECUTIONS)'),
    functions: z.number().int().min(0).max(1_000_000).optional().describe('functions (default KILN_QUOTA_FUNCTIONS)'),
    memoryMB: z.number().int().min(0).max(1 << 30).optional().describe('total memory of the tenant\'s live sessions\' sandboxes, MB, each its template\'s memoryMB (default KILN_QUOTA_MEMORY_MB)'),
    requestsPerSecond: z.number().int().min(0).max(1_000_000).optional().describe('authenticated API requests per second, counted by each replica on its own (default KILN_QUOTA_RPS)'),
    volumes: z.number().int().min(0).max(1_000_000).optional().describe('named volumes the tenant may keep, checked at volume create (default KILN_QUOTA_VOLUMES)'),
    volumeMB: z.number().int().min(0).max(1 << 30).optional().describe('total sizeMB of the tenant\'s named volumes, checked at volume create (default KILN_QUOTA_VOLUME_MB)'),
  })
  .strict()
  .openapi('TenantQuotas');

const TenantSchema = z
  .object({ id: z.string(), description: z.string(), createdAt: z.number().int(), quotas: QuotasSchema })
  .openapi('Tenant');
const TenantCreateSchema = z
  .object({
    id: z.string().regex(TENANT_ID, 'lowercase letters, digits and dashes, up to 63 characters, not twelve digits').openapi({ example: 'acme' }),
    description: z.string().max(1000).optional(),
    quotas: QuotasSchema.optional(),
  })
  .strict()
  .openapi('TenantCreate');
const TenantUpdateSchema = z.object({ description: z.string().max(1000).optional(), quotas: QuotasSchema.optional() }).strict().openapi('TenantUpdate');
const KeySchema = z
  .object({ keyId: z.string(), tenant: z.string(), scopes: z.array(z.enum(SCOPES)), description: z.string(), createdAt: z.number().int() })
  .openapi('ApiKey');
const KeyCreateSchema = z
  .object({
    scopes: z.array(z.enum(SCOPES)).min(1).max(SCOPES.length).optional().describe('default: sessions, functions, invoke, read (everything of the tenant\'s own)'),
    description: z.string().max(1000).optional(),
  })
  .strict()
  .openapi('ApiKeyCreate');
const NewKeySchema = KeySchema.extend({
  key: z.string().describe('The key: shown here once and never again (Kiln keeps only its hash, and a sealed copy for SigV4). As a SigV4 credential: access key id = keyId, secret access key = key.'),
}).openapi('ApiKeyCreated');

const TenantParam = z.object({ id: z.string().openapi({ param: { name: 'id', in: 'path' }, example: 'acme' }) });
const KeyParam = TenantParam.extend({ keyId: z.string().openapi({ param: { name: 'keyId', in: 'path' } }) });
const err = (description: string) => ({ description, content: { 'application/json': { schema: ErrorSchema } } });
const json = <T extends z.ZodTypeAny>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });
const tags = ['admin'];

const routes = {
  listTenants: createRoute({ method: 'get', path: '/api/v1/admin/tenants', tags, summary: 'List tenants', responses: { 200: json(z.object({ tenants: z.array(TenantSchema) }), 'Tenants made over this API') } }),
  createTenant: createRoute({
    method: 'post',
    path: '/api/v1/admin/tenants',
    tags,
    summary: 'Create a tenant',
    request: { body: { required: true, content: { 'application/json': { schema: TenantCreateSchema } } } },
    responses: { 201: json(TenantSchema, 'Created'), 400: err('Invalid tenant'), 409: err('A tenant of that id exists') },
  }),
  getTenant: createRoute({ method: 'get', path: '/api/v1/admin/tenants/{id}', tags, summary: 'Get a tenant', request: { params: TenantParam }, responses: { 200: json(TenantSchema, 'The tenant'), 404: err('Unknown tenant') } }),
  updateTenant: createRoute({
    method: 'patch',
    path: '/api/v1/admin/tenants/{id}',
    tags,
    summary: 'Change a tenant\'s description or quotas',
    description: '`quotas` replaces the tenant\'s overrides as a whole; `{}` returns it to the defaults.',
    request: { params: TenantParam, body: { required: true, content: { 'application/json': { schema: TenantUpdateSchema } } } },
    responses: { 200: json(TenantSchema, 'Changed'), 400: err('Invalid change'), 404: err('Unknown tenant') },
  }),
  deleteTenant: createRoute({
    method: 'delete',
    path: '/api/v1/admin/tenants/{id}',
    tags,
    summary: 'Delete a tenant and its keys',
    description: 'Its keys stop working (at once on this replica, within 5 s on others). What the tenant owns stays, reachable by administrators, until they delete it.',
    request: { params: TenantParam },
    responses: { 204: { description: 'Deleted' }, 404: err('Unknown tenant') },
  }),
  listKeys: createRoute({ method: 'get', path: '/api/v1/admin/tenants/{id}/keys', tags, summary: 'List a tenant\'s keys (never the keys themselves)', request: { params: TenantParam }, responses: { 200: json(z.object({ keys: z.array(KeySchema) }), 'The keys'), 404: err('Unknown tenant') } }),
  createKey: createRoute({
    method: 'post',
    path: '/api/v1/admin/tenants/{id}/keys',
    tags,
    summary: 'Make a key for a tenant',
    request: { params: TenantParam, body: { required: false, content: { 'application/json': { schema: KeyCreateSchema } } } },
    responses: { 201: json(NewKeySchema, 'The key, shown once'), 400: err('Invalid scopes'), 404: err('Unknown tenant') },
  }),
  deleteKey: createRoute({
    method: 'delete',
    path: '/api/v1/admin/tenants/{id}/keys/{keyId}',
    tags,
    summary: 'Delete a key',
    request: { params: KeyParam },
    responses: { 204: { description: 'Deleted: it stops working at once on this replica, within 5 s on others' }, 404: err('Unknown tenant or key') },
  }),
};

/** Tenants and their keys (administrators only: api/scopes.ts). Thin edge over the Keyring. */
export function adminRoutes(keyring: Keyring): OpenAPIHono<AppEnv> {
  const app = newRouter();
  app.openapi(routes.listTenants, async (c) => c.json({ tenants: await keyring.tenants() }, 200));
  app.openapi(routes.createTenant, async (c) => c.json(await keyring.createTenant(c.req.valid('json')), 201));
  app.openapi(routes.getTenant, async (c) => c.json(await keyring.tenant(c.req.valid('param').id), 200));
  app.openapi(routes.updateTenant, async (c) => c.json(await keyring.updateTenant(c.req.valid('param').id, c.req.valid('json')), 200));
  app.openapi(routes.deleteTenant, async (c) => {
    await keyring.deleteTenant(c.req.valid('param').id);
    return c.body(null, 204);
  });
  app.openapi(routes.listKeys, async (c) => {
    const { id } = c.req.valid('param');
    await keyring.tenant(id);
    return c.json({ keys: await keyring.listKeys(id) }, 200);
  });
  app.openapi(routes.createKey, async (c) => {
    // An empty body is a key with the default scopes.
    const body = c.req.header('content-type')?.includes('json') ? c.req.valid('json') : {};
    return c.json(await keyring.createKey(c.req.valid('param').id, body ?? {}), 201);
  });
  app.openapi(routes.deleteKey, async (c) => {
    const { id, keyId } = c.req.valid('param');
    await keyring.deleteKey(id, keyId);
    return c.body(null, 204);
  });
  return app;
}
