import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import { FILE_LINK_DEFAULT_SECONDS, FILE_LINK_MAX_SECONDS, FILE_LINK_MIN_SECONDS, FILE_LINK_PREFIX, FileLinks } from '../../sessions/file-links.js';
import type { SessionService } from '../../sessions/service.js';
import { DEFAULT_TENANT } from '../../tenancy/principal.js';
import { newRouter, type AppEnv } from '../router.js';
import { ErrorSchema } from '../schemas.js';
import { receive, send } from './file-transfer.js';
import type { UploadSlots } from '../upload-slots.js';
import { FileInfoSchema, SessionIdParam, sessionErrors as errors } from './session-schemas.js';

const LinkBody = z
  .object({
    path: z.string().min(1).max(4096).openapi({ description: 'The file, relative to /workspace or absolute inside it', example: 'out/report.pdf' }),
    method: z.enum(['GET', 'PUT']).default('GET').openapi({ description: 'GET downloads the file (Range works); PUT uploads it (parents are created)' }),
    expiresInSeconds: z.number().int().min(FILE_LINK_MIN_SECONDS).max(FILE_LINK_MAX_SECONDS).default(FILE_LINK_DEFAULT_SECONDS).openapi({ description: `How long the URL works (at most ${FILE_LINK_MAX_SECONDS} s)` }),
  })
  .strict();
const LinkAnswer = z.object({
  url: z.string().openapi({ description: 'Use it with the method below, without an API key' }),
  method: z.enum(['GET', 'PUT']),
  path: z.string(),
  expiresAt: z.string().openapi({ format: 'date-time' }),
});
const TokenParam = z.object({ token: z.string().max(8192).openapi({ param: { name: 'token', in: 'path' } }) });
const refused = { 403: { description: 'FileLinkRefused: tampered, expired, or used with another method', content: { 'application/json': { schema: ErrorSchema } } } };
const binary = (description: string) => ({ description, content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } } });

const routes = {
  make: createRoute({
    method: 'post',
    path: '/api/v1/sessions/{id}/files/url',
    tags: ['files'],
    summary: 'A signed URL that downloads (GET) or uploads (PUT) one file without an API key, until it expires',
    request: { params: SessionIdParam, body: { required: true, content: { 'application/json': { schema: LinkBody } } } },
    responses: { 200: { description: 'The URL', content: { 'application/json': { schema: LinkAnswer } } }, ...errors },
  }),
  get: createRoute({
    method: 'get',
    path: `${FILE_LINK_PREFIX}{token}`,
    tags: ['files'],
    summary: 'Download through a signed file URL (no key; Range works as on .../files)',
    request: { params: TokenParam },
    responses: { 200: binary('The file'), 206: binary('The range asked for'), ...refused, ...errors },
  }),
  put: createRoute({
    method: 'put',
    path: `${FILE_LINK_PREFIX}{token}`,
    tags: ['files'],
    summary: 'Upload through a signed file URL (no key)',
    request: { params: TokenParam, body: { required: true, content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } } } },
    responses: { 200: { description: 'Written', content: { 'application/json': { schema: FileInfoSchema } } }, ...refused, ...errors },
  }),
};

/**
 * Signed file URLs (sessions/file-links.ts). Making one needs a key that may use the session;
 * using one needs only the URL, and acts as the link's tenant on exactly its session, path and
 * method: the session is opened as that tenant on every use, so a deleted session's links are
 * dead. The public routes are rate-limited per client address in app.ts.
 */
export function fileLinkRoutes(sessions: SessionService, links: FileLinks, maxFileBytes: number, uploads: UploadSlots): OpenAPIHono<AppEnv> {
  const app = newRouter();
  app.openapi(routes.make, async (c) => {
    const id = c.req.valid('param').id;
    const b = c.req.valid('json');
    // The session must be this key's (404 otherwise), now; later uses check again.
    const { record } = await sessions.open(id, c.get('principal'));
    const expiresAtMs = Date.now() + b.expiresInSeconds * 1000;
    const token = links.token({ tenant: record.tenant ?? DEFAULT_TENANT, sessionId: record.id, path: b.path, method: b.method, expiresAtMs });
    return c.json({ url: `${new URL(c.req.url).origin}${FILE_LINK_PREFIX}${token}`, method: b.method, path: b.path, expiresAt: new Date(expiresAtMs).toISOString() }, 200);
  });
  app.openapi(routes.get, async (c) => {
    const claims = links.verify(c.req.valid('param').token, c.req.method);
    const { agent } = await sessions.open(claims.sessionId, FileLinks.principalOf(claims));
    return (await send(agent, claims.path, c.req.raw, maxFileBytes));
  });
  app.openapi(routes.put, async (c) => {
    const claims = links.verify(c.req.valid('param').token, c.req.method);
    const { agent } = await sessions.open(claims.sessionId, FileLinks.principalOf(claims));
    const info = await uploads.run(claims.tenant, () => receive(agent, 'file', claims.path, c, maxFileBytes, 0o644));
    return c.json({ path: info.path, name: info.name, type: 'file' as const, size: info.size, mode: info.mode, modifiedAt: new Date(info.modifiedAtMs).toISOString() }, 200);
  });
  return app;
}
