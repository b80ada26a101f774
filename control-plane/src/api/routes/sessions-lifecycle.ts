import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import type { SessionLifecycle } from '../../sessions/lifecycle.js';
import { MAX_FORK_COUNT, type SnapshotService } from '../../sessions/snapshots.js';
import { newRouter, type AppEnv } from '../router.js';
import { SessionIdParam, SessionSchema, sessionErrors as errors } from './session-schemas.js';

const json = <T extends z.ZodTypeAny>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });
const optionalBody = <T extends z.ZodTypeAny>(schema: T) => ({ body: { required: false, content: { 'application/json': { schema } } } });

const TransitionSchema = SessionSchema.extend({
  resumeType: z.enum(['thawed', 'restored']).optional().openapi({ description: 'Resume only: `thawed` (processes kept, from a pause) or `restored` (files restored into a new sandbox, from hibernation); absent when the session was running already' }),
  tookMs: z.number().openapi({ description: 'How long the step took in the control plane, in ms (0: nothing to do)' }),
}).openapi('SessionTransition');

const UsageSchema = z
  .object({
    paused: z.boolean(),
    hibernated: z.boolean(),
    cpuUsageUs: z.number().openapi({ description: 'CPU time of every process in the sandbox since it was made, in µs (its cgroup\'s accounting)' }),
    memoryBytes: z.number().openapi({ description: 'Memory its cgroup holds now (tmpfs and page cache included), in bytes; 0 when hibernated' }),
    processes: z.number(),
  })
  .openapi('SessionUsage');

export const SnapshotSchema = z
  .object({ id: z.string(), tenant: z.string(), name: z.string(), template: z.string(), sessionId: z.string().openapi({ description: 'The session it was taken from' }), createdAt: z.string(), bytes: z.number().openapi({ description: 'Size of the archive' }) })
  .openapi('Snapshot');

const SnapshotIdParam = z.object({ id: z.string().min(1).max(100).openapi({ param: { name: 'id', in: 'path' }, example: 'snap_9a1f...' }) });

const lifecycleDoc =
  'Pausing freezes every process of the session (cgroup freezer): memory, open files and terminals stay, CPU use stops, and paused time does not count against timeoutMs. A paused session still counts against its tenant\'s session and memory quotas. After KILN_SESSION_HIBERNATE_AFTER_MS paused (or POST /hibernate) its /workspace goes to the blob store and its sandbox is freed.';

const ForkBody = z
  .object({
    count: z.number().int().min(1).max(MAX_FORK_COUNT).default(1),
    timeoutMs: z.number().int().min(1000).optional(),
    metadata: z.record(z.string()).optional().openapi({ description: 'Added to the source\'s metadata' }),
  })
  .strict();

const SnapshotBody = z.object({ name: z.string().min(1).max(128).optional() }).strict();

const routes = {
  pause: createRoute({ method: 'post', path: '/api/v1/sessions/{id}/pause', tags: ['sessions'], summary: 'Pause a session (freeze its processes)', description: lifecycleDoc, request: { params: SessionIdParam }, responses: { 200: json(TransitionSchema, 'Paused (or paused already)'), ...errors } }),
  resume: createRoute({
    method: 'post',
    path: '/api/v1/sessions/{id}/resume',
    tags: ['sessions'],
    summary: 'Resume a paused session',
    description: 'Thaws its processes (`resumeType: thawed`), or for a hibernated session restores its /workspace into a new sandbox of the same template (`restored`: processes do not survive hibernation). The pause is added to `expiresAt`.',
    request: { params: SessionIdParam },
    responses: { 200: json(TransitionSchema, 'Running'), ...errors },
  }),
  hibernate: createRoute({
    method: 'post',
    path: '/api/v1/sessions/{id}/hibernate',
    tags: ['sessions'],
    summary: 'Save a session\'s /workspace to the blob store and free its sandbox',
    description: 'The session stays paused (`hibernated: true`); its processes end. A running session is hibernated too.',
    request: { params: SessionIdParam },
    responses: { 200: json(TransitionSchema, 'Hibernated'), ...errors },
  }),
  usage: createRoute({ method: 'get', path: '/api/v1/sessions/{id}/usage', tags: ['sessions'], summary: 'CPU time and memory of the session\'s sandbox (does not resume it)', request: { params: SessionIdParam }, responses: { 200: json(UsageSchema, 'Usage'), ...errors } }),
  snapshot: createRoute({
    method: 'post',
    path: '/api/v1/sessions/{id}/snapshots',
    tags: ['snapshots'],
    summary: 'Save the session\'s /workspace as a named snapshot',
    description: 'Counts against the tenant\'s KILN_QUOTA_SNAPSHOTS (429 QuotaExceeded, `data.quota: snapshots`). The session keeps its state (a paused one is thawed for the archive and frozen again).',
    request: { params: SessionIdParam, ...optionalBody(SnapshotBody) },
    responses: { 201: json(SnapshotSchema, 'Saved'), ...errors },
  }),
  list: createRoute({ method: 'get', path: '/api/v1/snapshots', tags: ['snapshots'], summary: 'List the tenant\'s snapshots', responses: { 200: json(z.object({ snapshots: z.array(SnapshotSchema) }), 'Snapshots'), ...errors } }),
  get: createRoute({ method: 'get', path: '/api/v1/snapshots/{id}', tags: ['snapshots'], summary: 'Get a snapshot', request: { params: SnapshotIdParam }, responses: { 200: json(SnapshotSchema, 'The snapshot'), ...errors } }),
  delete: createRoute({ method: 'delete', path: '/api/v1/snapshots/{id}', tags: ['snapshots'], summary: 'Delete a snapshot', request: { params: SnapshotIdParam }, responses: { 204: { description: 'Deleted' }, ...errors } }),
  fork: createRoute({
    method: 'post',
    path: '/api/v1/sessions/{id}/fork',
    tags: ['sessions'],
    summary: `Make up to ${MAX_FORK_COUNT} new sessions with copies of this session's /workspace`,
    description: 'Each is a session of its own (template, env, metadata and timeouts of the source unless given) and counts against the session quotas; processes are not copied. All or nothing.',
    request: {
      params: SessionIdParam,
      ...optionalBody(ForkBody),
    },
    responses: { 201: json(z.object({ sessions: z.array(SessionSchema) }), 'Made'), ...errors },
  }),
};

/** Thin edge over SessionLifecycle and SnapshotService: pause, resume, hibernate, snapshots, forks. */
export function sessionLifecycleRoutes(lifecycle: SessionLifecycle, snapshots: SnapshotService): OpenAPIHono<AppEnv> {
  const app = newRouter();
  const transition = (r: Awaited<ReturnType<SessionLifecycle['pause']>>) => ({ ...r.session, ...(r.resumeType ? { resumeType: r.resumeType } : {}), tookMs: Math.round(r.tookMs * 100) / 100 });
  app.openapi(routes.pause, async (c) => c.json(transition(await lifecycle.pause(c.req.valid('param').id, c.get('principal'))), 200));
  app.openapi(routes.resume, async (c) => c.json(transition(await lifecycle.resume(c.req.valid('param').id, c.get('principal'))), 200));
  app.openapi(routes.hibernate, async (c) => c.json(transition(await lifecycle.hibernate(c.req.valid('param').id, c.get('principal'))), 200));
  app.openapi(routes.usage, async (c) => c.json(await lifecycle.usage(c.req.valid('param').id, c.get('principal')), 200));
  app.openapi(routes.snapshot, async (c) => {
    // The route's validator has checked a JSON body already (malformed JSON and unknown fields are
    // 400 there); a request without one asks for the defaults.
    const body = (c.req.valid('json') as z.infer<typeof SnapshotBody> | undefined) ?? {};
    return c.json(await snapshots.create(c.req.valid('param').id, body.name, c.get('principal')), 201);
  });
  app.openapi(routes.list, async (c) => c.json({ snapshots: await snapshots.list(c.get('principal')) }, 200));
  app.openapi(routes.get, async (c) => c.json(await snapshots.get(c.req.valid('param').id, c.get('principal')), 200));
  app.openapi(routes.delete, async (c) => {
    await snapshots.delete(c.req.valid('param').id, c.get('principal'));
    return c.body(null, 204);
  });
  app.openapi(routes.fork, async (c) => {
    const body = (c.req.valid('json') as z.input<typeof ForkBody> | undefined) ?? {};
    return c.json({ sessions: await snapshots.fork(c.req.valid('param').id, { ...body, count: body.count ?? 1 }, c.get('principal')) }, 201);
  });
  return app;
}
