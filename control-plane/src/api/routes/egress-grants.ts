import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import { egressPolicySchema } from '@kiln/executor/egress-policy';
import { NotFoundError } from '../../errors.js';
import type { EgressGrants } from '../../egress/grants.js';
import { TENANT_ID } from '../../tenancy/principal.js';
import { newRouter, type AppEnv } from '../router.js';
import { ErrorSchema } from '../schemas.js';

const json = <T extends z.ZodTypeAny>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });
const errors = { 400: json(ErrorSchema, 'Invalid request'), 403: json(ErrorSchema, 'Not an administrator key'), 404: json(ErrorSchema, 'The tenant has no grant') };
const Params = z.object({ id: z.string().regex(TENANT_ID).openapi({ param: { name: 'id', in: 'path' } }) });
const Rules = z.object({ domains: z.array(z.string()), cidrs: z.array(z.string()), ports: z.array(z.number().int()) });
const GrantSchema = z.object({ tenant: z.string(), grant: z.object({ allow: Rules.extend({ all: z.boolean() }), deny: Rules }) }).openapi('EgressGrant');

const routes = {
  put: createRoute({
    method: 'put',
    path: '/api/v1/admin/tenants/{id}/egress-grant',
    tags: ['admin'],
    summary: "Let a tenant's sessions and functions reach more than their templates' egress policies",
    description:
      "A session's (at create or PUT .../network) or function's policy may lie anywhere within its template's policy joined with this grant's allow rules (domains, CIDRs, `all`). The template's deny rules and ports stay. Without a grant a tenant may only narrow. Takes effect for policies set from now on.",
    request: { params: Params, body: { required: true, content: { 'application/json': { schema: egressPolicySchema.openapi('EgressGrantInput') } } } },
    responses: { 200: json(GrantSchema, 'The grant'), ...errors },
  }),
  get: createRoute({ method: 'get', path: '/api/v1/admin/tenants/{id}/egress-grant', tags: ['admin'], summary: "A tenant's egress grant", request: { params: Params }, responses: { 200: json(GrantSchema, 'The grant'), ...errors } }),
  delete: createRoute({ method: 'delete', path: '/api/v1/admin/tenants/{id}/egress-grant', tags: ['admin'], summary: "Withdraw a tenant's egress grant", request: { params: Params }, responses: { 204: { description: 'Withdrawn' }, ...errors } }),
};

/** Administrators only (scopes.ts puts /api/v1/admin under `admin`). */
export function egressGrantRoutes(grants: EgressGrants): OpenAPIHono<AppEnv> {
  const app = newRouter();
  app.openapi(routes.put, async (c) => {
    const { id } = c.req.valid('param');
    return c.json({ tenant: id, grant: await grants.put(id, c.req.valid('json')) }, 200);
  });
  app.openapi(routes.get, async (c) => {
    const { id } = c.req.valid('param');
    const grant = await grants.get(id);
    if (!grant) throw new NotFoundError('EgressGrant', id);
    return c.json({ tenant: id, grant }, 200);
  });
  app.openapi(routes.delete, async (c) => {
    const { id } = c.req.valid('param');
    if (!(await grants.delete(id))) throw new NotFoundError('EgressGrant', id);
    return c.body(null, 204);
  });
  return app;
}
