import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import { egressPolicySchema } from '@kiln/executor/egress-policy';
import { SecretNameParam } from '../../egress/secrets.js';
import type { EgressService } from '../../egress/service.js';
import { newRouter, type AppEnv } from '../router.js';
import { SessionIdParam, sessionErrors as errors } from './session-schemas.js';

const json = <T extends z.ZodTypeAny>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });

const Rules = z.object({ domains: z.array(z.string()), cidrs: z.array(z.string()), ports: z.array(z.number().int()) });
const PolicySchema = z.object({ allow: Rules.extend({ all: z.boolean() }), deny: Rules }).openapi('NetworkPolicy');
const PolicyInput = egressPolicySchema.openapi('NetworkPolicyInput', {
  description:
    '`"none"`, `"all"` (every public name and address on ports 80 and 443), or `{ "allow": { "all"?, "domains": ["example.com", "*.example.com"], "cidrs": ["203.0.113.0/24"], "ports": [443] }, "deny": { ... } }`. Absent ports mean 80 and 443. Must lie within the template\'s policy (400 NetworkPolicyWidens).',
  example: { allow: { domains: ['pypi.org', '*.pythonhosted.org'], ports: [443] } },
});
const SessionNetworkSchema = z
  .object({ sessionId: z.string(), template: PolicySchema.openapi({ description: "The template's policy: the most the session may have" }), policy: PolicySchema.openapi({ description: 'The policy in force' }) })
  .openapi('SessionNetwork');
const AuditSchema = z
  .object({
    sessionId: z.string(),
    records: z.array(
      z.object({
        seq: z.number().int(),
        time: z.string(),
        protocol: z.enum(['dns', 'tcp', 'http', 'tls']),
        domain: z.string().openapi({ description: 'Name asked for or connected to (DNS question, SNI, Host, or the name behind a Kiln DNS answer); empty for IP literals' }),
        ip: z.string().openapi({ description: 'Destination address (for names: the upstream address Kiln connected to)' }),
        port: z.number().int(),
        allowed: z.boolean(),
        rule: z.string().openapi({ description: 'The rule that decided, e.g. `allow.domains:*.example.com`, `deny.cidrs:...`, `default`, `private`, `template allow.ports`' }),
        bytesOut: z.number().int(),
        bytesIn: z.number().int(),
        detail: z.string(),
      }),
    ),
    dropped: z.number().int().openapi({ description: "Records that fell out of the executor's bounded buffer (the newest 2000 are kept) before they were read" }),
    allowedTotal: z.number().int(),
    refusedTotal: z.number().int(),
  })
  .openapi('NetworkAudit');

const BindSecretsSchema = z
  .object({ names: z.array(SecretNameParam).min(1).max(32).openapi({ description: "Names of the session's tenant's secrets", example: ['openai'] }) })
  .strict()
  .openapi('BindSecrets');
const BoundSecretsSchema = z
  .object({
    sessionId: z.string(),
    env: z.record(z.string()).openapi({ description: 'What the session environment now holds: KILN_SECRET_<NAME> = a placeholder; the proxy puts the value in its place', example: { KILN_SECRET_OPENAI: 'kiln-secret-openai-3f9c...' } }),
  })
  .openapi('BoundSecrets');

const routes = {
  bindSecrets: createRoute({
    method: 'post',
    path: '/api/v1/sessions/{id}/secrets',
    tags: ['sessions'],
    summary: "Bind the tenant's egress secrets to a session (the sandbox gets placeholders only)",
    description:
      "Each secret's value is sent to the session's executor, whose egress proxy puts it into plain-HTTP requests to the secret's hosts (its `header` set to `format`, and its placeholder replaced in header lines). The session's environment gets `KILN_SECRET_<NAME>` = the placeholder for processes started afterwards. HTTPS requests are not changed.",
    request: { params: SessionIdParam, body: { required: true, content: { 'application/json': { schema: BindSecretsSchema } } } },
    responses: { 200: json(BoundSecretsSchema, 'Bound'), ...errors },
  }),
  get: createRoute({ method: 'get', path: '/api/v1/sessions/{id}/network', tags: ['sessions'], summary: "A session's egress policy", request: { params: SessionIdParam }, responses: { 200: json(SessionNetworkSchema, 'The policy'), ...errors } }),
  put: createRoute({
    method: 'put',
    path: '/api/v1/sessions/{id}/network',
    tags: ['sessions'],
    summary: "Change a running session's egress policy (new connections and DNS questions follow it at once)",
    request: { params: SessionIdParam, body: { required: true, content: { 'application/json': { schema: PolicyInput } } } },
    responses: { 200: json(SessionNetworkSchema, 'The policy in force'), ...errors },
  }),
  audit: createRoute({
    method: 'get',
    path: '/api/v1/sessions/{id}/network/audit',
    tags: ['sessions'],
    summary: "A session's egress connections and refusals, oldest first",
    request: {
      params: SessionIdParam,
      query: z.object({ after: z.coerce.number().int().min(0).default(0).openapi({ description: 'Only records with a larger seq' }), limit: z.coerce.number().int().min(1).max(1000).default(1000) }),
    },
    responses: { 200: json(AuditSchema, 'Records'), ...errors },
  }),
};

/** Thin edge over EgressService: a session's network policy and its audit. */
export function sessionNetworkRoutes(egress: EgressService): OpenAPIHono<AppEnv> {
  const app = newRouter();
  app.openapi(routes.bindSecrets, async (c) => c.json(await egress.bindSecrets(c.req.valid('param').id, c.req.valid('json').names, c.get('principal')), 200));
  app.openapi(routes.get, async (c) => c.json(await egress.get(c.req.valid('param').id, c.get('principal')), 200));
  app.openapi(routes.put, async (c) => c.json(await egress.put(c.req.valid('param').id, c.req.valid('json'), c.get('principal')), 200));
  app.openapi(routes.audit, async (c) => {
    const q = c.req.valid('query');
    return c.json((await egress.audit(c.req.valid('param').id, c.get('principal'), q.after, q.limit)) as never, 200);
  });
  return app;
}
