import type { Principal } from '../../tenancy/principal.js';
import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import type { FileInfo } from '@kiln/proto/executor/files';
import type { SessionAgent } from '../../agent/session-client.js';
import type { SessionService } from '../../sessions/service.js';
import { newRouter, type AppEnv } from '../router.js';
import { receive, send, streamed } from './file-transfer.js';
import type { UploadSlots } from '../upload-slots.js';
import { ErrorSchema } from '../schemas.js';
import { FileInfoSchema, SessionIdParam, sessionErrors as errors } from './session-schemas.js';

const RangeHeaders = z.object({
  range: z.string().optional().openapi({ description: 'One byte range, e.g. bytes=0-1023, bytes=1024- or bytes=-500', example: 'bytes=0-1023' }),
  'if-range': z.string().optional().openapi({ description: 'An ETag from an earlier download: the range is served only if the file is unchanged, else all of it' }),
});
const PathQuery = z.object({ path: z.string().default('.').openapi({ description: 'Relative to /workspace, or absolute inside it', example: 'src/main.py' }) });
const json = <T extends z.ZodTypeAny>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });
const binary = (description: string, type = 'application/octet-stream') => ({ description, content: { [type]: { schema: z.string().openapi({ format: 'binary' }) } } });
const rawBody = (type: string) => ({ body: { required: true, content: { [type]: { schema: z.string().openapi({ format: 'binary' }) } } } });

const routes = {
  read: createRoute({
    method: 'get',
    path: '/api/v1/sessions/{id}/files',
    tags: ['files'],
    summary: 'Download a file (streamed; one `Range` answered with 206, `If-Range` honoured)',
    request: { params: SessionIdParam, query: PathQuery, headers: RangeHeaders },
    responses: {
      200: binary('The file\'s bytes (Content-Length, ETag, Accept-Ranges: bytes)'),
      206: binary('The range asked for (Content-Range: bytes start-end/size)'),
      416: json(ErrorSchema, 'RangeNotSatisfiable: no byte of the range is in the file, or several ranges were asked for (Content-Range: bytes */size)'),
      ...errors,
    },
  }),
  write: createRoute({
    method: 'put',
    path: '/api/v1/sessions/{id}/files',
    tags: ['files'],
    summary: 'Upload a file (streamed); parent directories are created',
    request: { params: SessionIdParam, query: PathQuery.extend({ mode: z.string().regex(/^[0-7]{3,4}$/).optional().openapi({ description: 'Octal permissions (default 644)' }) }), ...rawBody('application/octet-stream') },
    responses: { 200: json(FileInfoSchema, 'Written'), ...errors },
  }),
  list: createRoute({ method: 'get', path: '/api/v1/sessions/{id}/files/list', tags: ['files'], summary: 'List a directory', request: { params: SessionIdParam, query: PathQuery }, responses: { 200: json(z.object({ entries: z.array(FileInfoSchema) }), 'Entries'), ...errors } }),
  stat: createRoute({ method: 'get', path: '/api/v1/sessions/{id}/files/stat', tags: ['files'], summary: 'Stat a path', request: { params: SessionIdParam, query: PathQuery }, responses: { 200: json(FileInfoSchema, 'Info'), ...errors } }),
  mkdir: createRoute({
    method: 'post',
    path: '/api/v1/sessions/{id}/files/mkdir',
    tags: ['files'],
    summary: 'Create a directory and its parents',
    request: { params: SessionIdParam, body: { required: true, content: { 'application/json': { schema: z.object({ path: z.string().min(1) }).strict() } } } },
    responses: { 200: json(FileInfoSchema, 'Created'), ...errors },
  }),
  remove: createRoute({
    method: 'delete',
    path: '/api/v1/sessions/{id}/files',
    tags: ['files'],
    summary: 'Remove a file or directory',
    request: { params: SessionIdParam, query: PathQuery.extend({ recursive: z.enum(['true', 'false']).optional() }) },
    responses: { 200: json(z.object({ existed: z.boolean() }), 'Removed'), ...errors },
  }),
  rename: createRoute({
    method: 'post',
    path: '/api/v1/sessions/{id}/files/rename',
    tags: ['files'],
    summary: 'Rename or move a path',
    request: { params: SessionIdParam, body: { required: true, content: { 'application/json': { schema: z.object({ from: z.string().min(1), to: z.string().min(1) }).strict() } } } },
    responses: { 200: json(FileInfoSchema, 'Renamed'), ...errors },
  }),
  tarGet: createRoute({ method: 'get', path: '/api/v1/sessions/{id}/files/tar', tags: ['files'], summary: 'Download a directory as a tar stream', request: { params: SessionIdParam, query: PathQuery }, responses: { 200: binary('A tar archive', 'application/x-tar'), ...errors } }),
  tarPut: createRoute({
    method: 'put',
    path: '/api/v1/sessions/{id}/files/tar',
    tags: ['files'],
    summary: 'Extract a tar stream into a directory (created if missing)',
    request: { params: SessionIdParam, query: PathQuery, ...rawBody('application/x-tar') },
    responses: { 200: json(FileInfoSchema, 'Extracted'), ...errors },
  }),
};

function fileInfo(f: FileInfo): z.infer<typeof FileInfoSchema> {
  return {
    path: f.path,
    name: f.name,
    type: f.type as z.infer<typeof FileInfoSchema>['type'],
    size: f.size,
    mode: f.mode,
    modifiedAt: new Date(f.modifiedAtMs).toISOString(),
    ...(f.symlinkTarget ? { symlinkTarget: f.symlinkTarget } : {}),
  };
}

/** Thin edge for a session's files: every path is checked by the executor (400 PathOutsideWorkspace). */
export function sessionFileRoutes(sessions: SessionService, maxFileBytes: number, uploads: UploadSlots): OpenAPIHono<AppEnv> {
  const app = newRouter();
  const agentOf = async (id: string, who: Principal): Promise<SessionAgent> => (await sessions.open(id, who)).agent;
  app.openapi(routes.read, async (c) => (await send(await agentOf(c.req.valid('param').id, c.get('principal')), c.req.valid('query').path, c.req.raw, maxFileBytes)) as never);
  app.openapi(routes.write, async (c) => {
    const q = c.req.valid('query');
    const agent = await agentOf(c.req.valid('param').id, c.get('principal'));
    return c.json(fileInfo(await uploads.run(c.get('principal').tenant, () => receive(agent, 'file', q.path, c, maxFileBytes, q.mode ? parseInt(q.mode, 8) : 0o644))), 200);
  });
  app.openapi(routes.list, async (c) => c.json({ entries: (await (await agentOf(c.req.valid('param').id, c.get('principal'))).list(c.req.valid('query').path)).map(fileInfo) }, 200));
  app.openapi(routes.stat, async (c) => c.json(fileInfo(await (await agentOf(c.req.valid('param').id, c.get('principal'))).stat(c.req.valid('query').path)), 200));
  app.openapi(routes.mkdir, async (c) => c.json(fileInfo(await (await agentOf(c.req.valid('param').id, c.get('principal'))).mkdir(c.req.valid('json').path)), 200));
  app.openapi(routes.remove, async (c) => {
    const q = c.req.valid('query');
    return c.json({ existed: await (await agentOf(c.req.valid('param').id, c.get('principal'))).remove(q.path, q.recursive === 'true') }, 200);
  });
  app.openapi(routes.rename, async (c) => {
    const b = c.req.valid('json');
    return c.json(fileInfo(await (await agentOf(c.req.valid('param').id, c.get('principal'))).rename(b.from, b.to)), 200);
  });
  app.openapi(routes.tarGet, async (c) => (await streamed((await agentOf(c.req.valid('param').id, c.get('principal'))).tarDownload(c.req.valid('query').path), 'application/x-tar')) as never);
  app.openapi(routes.tarPut, async (c) => {
    const agent = await agentOf(c.req.valid('param').id, c.get('principal'));
    return c.json(fileInfo(await uploads.run(c.get('principal').tenant, () => receive(agent, 'tar', c.req.valid('query').path, c, maxFileBytes))), 200);
  });
  return app;
}
