import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { networkPolicy } from '../../templates/network.js';
import { ValidationError } from '../../errors.js';
import { SESSION_LIMITS, type SessionService, type SessionView } from '../../sessions/service.js';
import type { TemplateRegistry } from '../../templates/registry.js';
import type { SessionLifecycle } from '../../sessions/lifecycle.js';
import type { AppEnv } from '../router.js';
import { e2bError, onE2bError } from './errors.js';

/**
 * The envd version Kiln answers with. The SDKs turn features on by it (versions.ts in the JS
 * SDK): 0.5.7 enables stdin, closeStdin, recursive watches, octet-stream uploads and the
 * default user; file metadata (0.6.2) and entries in watch events (0.6.3) stay off, and the SDK
 * says so when asked for them.
 */
export const ENVD_VERSION = '0.5.7';
/** E2B's default sandbox lifetime when create names none, in seconds. */
const DEFAULT_TIMEOUT_S = 300;
const MAX_TIMEOUT_S = 86_400;
const MAX_PAGE = 100;

const Err = z.object({ code: z.number(), message: z.string() }).openapi('E2BError');
const errors = {
  400: { description: 'Bad input', content: { 'application/json': { schema: Err } } },
  401: { description: 'No key, or an unknown one', content: { 'application/json': { schema: Err } } },
  404: { description: 'No such sandbox (or another tenant\'s)', content: { 'application/json': { schema: Err } } },
  429: { description: 'A quota of the tenant', content: { 'application/json': { schema: Err } } },
};
const SandboxIdParam = z.object({ sandboxID: z.string().min(1).max(100).openapi({ param: { name: 'sandboxID', in: 'path' } }) });

const NewSandbox = z
  .object({
    templateID: z.string().min(1).max(63).openapi({ description: 'A Kiln template name', example: 'nodejs' }),
    timeout: z.number().int().min(1).max(MAX_TIMEOUT_S).optional().openapi({ description: 'Seconds until the sandbox is killed (default 300)' }),
    metadata: z.record(z.string()).optional(),
    envVars: z.record(z.string()).optional().openapi({ description: 'Environment of every process in the sandbox' }),
    allow_internet_access: z.boolean().optional().openapi({ description: 'Kiln\'s network policy is the template\'s: false on a template with network "outbound" is 400; true on one without network gets none (see allowInternetAccess in the sandbox\'s details)' }),
    autoPause: z.boolean().optional(),
    secure: z.boolean().optional(),
    volumeMounts: z
      .array(
        z
          .object({
            name: z.string().min(1).max(63).openapi({ description: 'A Kiln volume of the tenant (POST /api/v1/volumes)' }),
            path: z.string().min(1).max(256).openapi({ description: 'Where it appears in the sandbox: under /mnt/' }),
          })
          .strict(),
      )
      .max(8)
      .optional()
      .openapi({ description: 'The SDK\'s `volumeMounts` ({ "/mnt/data": "name" }): Kiln volumes mounted read-write, checked as REST\'s session `volumes` (404 for an unknown volume, 400 for a path outside /mnt/)' }),
  })
  .passthrough()
  .openapi('E2BNewSandbox');

const Sandbox = z
  .object({
    sandboxID: z.string(),
    templateID: z.string(),
    alias: z.string().optional(),
    clientID: z.string(),
    envdVersion: z.string(),
    envdAccessToken: z.string().optional().openapi({ description: 'Send as X-Access-Token to the sandbox routes; only on create and connect' }),
    trafficAccessToken: z.string().optional().openapi({ description: 'The same token, under the name @e2b/code-interpreter sends on its /contexts calls (E2B-Traffic-Access-Token)' }),
    domain: z.string().nullable(),
  })
  .openapi('E2BSandbox');

const SandboxDetail = z
  .object({
    sandboxID: z.string(),
    templateID: z.string(),
    alias: z.string().optional(),
    clientID: z.string(),
    startedAt: z.string(),
    endAt: z.string(),
    cpuCount: z.number(),
    memoryMB: z.number(),
    diskSizeMB: z.number(),
    envdVersion: z.string(),
    metadata: z.record(z.string()),
    state: z.enum(['running', 'paused']),
    allowInternetAccess: z.boolean(),
    domain: z.string().nullable(),
    volumeMounts: z.array(z.object({ name: z.string(), path: z.string() })),
  })
  .openapi('E2BSandboxDetail');

const Timeout = z.object({ timeout: z.number().int().min(0).max(MAX_TIMEOUT_S) }).openapi('E2BTimeout');
const json = <T extends z.ZodTypeAny>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });
const body = <T extends z.ZodTypeAny>(schema: T) => ({ body: { required: true, content: { 'application/json': { schema } } } });

const tags = ['e2b'];
const routes = {
  create: createRoute({ method: 'post', path: '/e2b/sandboxes', tags, summary: 'Create a sandbox (a Kiln session)', request: body(NewSandbox), responses: { 201: json(Sandbox, 'Created'), ...errors } }),
  createV2: createRoute({ method: 'post', path: '/e2b/v2/sandboxes', tags, summary: 'Create a sandbox (a Kiln session)', request: body(NewSandbox), responses: { 201: json(Sandbox, 'Created'), ...errors } }),
  list: createRoute({
    method: 'get',
    path: '/e2b/v2/sandboxes',
    tags,
    summary: 'List sandboxes',
    description: '`metadata` is a URL-encoded query string of key=value pairs that must all match; `state` a comma-separated list (running, paused); pages of `limit` (at most 100), the next one named by the `x-next-token` response header.',
    request: { query: z.object({ metadata: z.string().max(4096).optional(), state: z.string().max(100).optional(), limit: z.coerce.number().int().min(1).max(MAX_PAGE).optional(), nextToken: z.string().max(200).optional() }).passthrough() },
    responses: { 200: json(z.array(SandboxDetail), 'Sandboxes'), ...errors },
  }),
  listV1: createRoute({ method: 'get', path: '/e2b/sandboxes', tags, summary: 'List running sandboxes', request: { query: z.object({ metadata: z.string().max(4096).optional() }).passthrough() }, responses: { 200: json(z.array(SandboxDetail), 'Sandboxes'), ...errors } }),
  get: createRoute({ method: 'get', path: '/e2b/sandboxes/{sandboxID}', tags, summary: 'Get a sandbox', request: { params: SandboxIdParam }, responses: { 200: json(SandboxDetail, 'The sandbox'), ...errors } }),
  kill: createRoute({ method: 'delete', path: '/e2b/sandboxes/{sandboxID}', tags, summary: 'Kill a sandbox', request: { params: SandboxIdParam }, responses: { 204: { description: 'Killed' }, ...errors } }),
  timeout: createRoute({ method: 'post', path: '/e2b/sandboxes/{sandboxID}/timeout', tags, summary: 'Kill the sandbox `timeout` seconds from now', request: { params: SandboxIdParam, ...body(Timeout) }, responses: { 204: { description: 'Set' }, ...errors } }),
  refresh: createRoute({
    method: 'post',
    path: '/e2b/sandboxes/{sandboxID}/refreshes',
    tags,
    summary: 'Keep the sandbox alive `duration` seconds from now',
    request: { params: SandboxIdParam, body: { required: false, content: { 'application/json': { schema: z.object({ duration: z.number().int().min(0).max(3600).optional() }) } } } },
    responses: { 204: { description: 'Refreshed' }, ...errors },
  }),
  connect: createRoute({
    method: 'post',
    path: '/e2b/v2/sandboxes/{sandboxID}/connect',
    tags,
    summary: 'Connect to a running sandbox (and set its timeout); answers its access token',
    request: { params: SandboxIdParam, body: { required: false, content: { 'application/json': { schema: z.object({ timeout: z.number().int().min(0).max(MAX_TIMEOUT_S).optional() }).passthrough() } } } },
    responses: { 200: json(Sandbox, 'Connected'), ...errors },
  }),
  pause: createRoute({
    method: 'post',
    path: '/e2b/sandboxes/{sandboxID}/pause',
    tags,
    summary: 'Pause a sandbox (freeze its processes; `memory: false` hibernates: files only); 409 when paused already',
    request: { params: SandboxIdParam, body: { required: false, content: { 'application/json': { schema: z.object({ memory: z.boolean().optional() }).passthrough() } } } },
    responses: { 204: { description: 'Paused' }, 409: json(Err, 'Already paused'), ...errors },
  }),
};

/** Parses E2B's `metadata` query (`k=v&k2=v2`, each part URL-encoded once more by the SDK). */
function metadataQuery(raw: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  const decode = (s: string): string => {
    try {
      return decodeURIComponent(s);
    } catch {
      throw new ValidationError(`metadata: "${s.slice(0, 100)}" is not URL-encoded`);
    }
  };
  for (const [k, v] of new URLSearchParams(raw ?? '')) out[decode(k)] = decode(v);
  return out;
}

/** The opaque page token: the createdAt and id of the last sandbox of the previous page. */
const pageToken = (s: SessionView): string => Buffer.from(`${Date.parse(s.createdAt)}:${s.id}`).toString('base64url');
function after(token: string | undefined): (s: SessionView) => boolean {
  if (!token) return () => true;
  const [at, id] = Buffer.from(token, 'base64url').toString().split(':');
  if (!at || !id || !/^\d+$/.test(at)) throw new ValidationError('nextToken is not a token this API gave');
  return (s) => Date.parse(s.createdAt) > Number(at) || (Date.parse(s.createdAt) === Number(at) && s.id > id);
}

/** E2B's control API over Kiln sessions: a sandbox is a session, its id the session id. */
export function e2bControlRoutes(sessions: SessionService, templates: TemplateRegistry, lifecycle?: SessionLifecycle): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({
    defaultHook: (result, c) => {
      if (result.success) return;
      const issue = result.error.issues[0];
      return e2bError(c, 400, `${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}`);
    },
  });
  app.onError(onE2bError);
  // Internet access in E2B's sense: an outbound template, or one with an egress policy (templates/network.ts).
  const outbound = (template: string): boolean => {
    const p = networkPolicy(templates.get(template).network);
    return p.outbound || p.egress !== undefined;
  };
  const detail = (s: SessionView): z.infer<typeof SandboxDetail> => {
    const t = templates.has(s.template) ? templates.get(s.template).resources : { cpu: 0, memoryMB: 0, diskMB: 0 };
    return {
      sandboxID: s.id,
      templateID: s.template,
      alias: s.template,
      clientID: 'kiln',
      startedAt: s.createdAt,
      endAt: s.expiresAt,
      cpuCount: t.cpu,
      memoryMB: t.memoryMB,
      diskSizeMB: t.diskMB,
      envdVersion: ENVD_VERSION,
      metadata: s.metadata,
      state: s.status === 'paused' ? 'paused' : 'running',
      allowInternetAccess: templates.has(s.template) && outbound(s.template),
      domain: null,
      volumeMounts: (s.volumes ?? []).map((v) => ({ name: v.name, path: v.path })),
    };
  };
  const sandbox = (s: SessionView, token: string | undefined): z.infer<typeof Sandbox> => ({
    sandboxID: s.id,
    templateID: s.template,
    alias: s.template,
    clientID: 'kiln',
    envdVersion: ENVD_VERSION,
    // The code interpreter SDK sends the traffic token on every port-49999 call but the envd
    // token only on /execute: the same token under both names lets its context calls in.
    ...(token ? { envdAccessToken: token, trafficAccessToken: token } : {}),
    domain: null,
  });

  const create = async (c: Parameters<Parameters<typeof app.openapi<typeof routes.create>>[1]>[0]) => {
    const b = c.req.valid('json');
    const who = c.get('principal');
    // Kiln's network policy is the template's. Asking for less than it gives is refused (the
    // caller would believe the sandbox is offline); asking for more gets what it has: the Python
    // SDK sends allow_internet_access: true unless told otherwise.
    if (b.allow_internet_access === false && outbound(b.templateID)) {
      throw new ValidationError(`template "${b.templateID}" has network "outbound", so allow_internet_access cannot be false; Kiln's network policy is the template's: choose a template with network "none"`);
    }
    const timeoutMs = (b.timeout ?? DEFAULT_TIMEOUT_S) * 1000;
    // E2B sandboxes live until their timeout (which setTimeout may move) whether used or not:
    // an idle timeout as long as the longest lifetime never comes first.
    // autoPause: E2B pauses at the timeout instead of killing; Kiln pauses after `timeout` without
    // activity (its idle clock), and the lifetime is then the longest the template allows.
    const autoResume = typeof b.autoResume === 'object' && b.autoResume !== null ? (b.autoResume as { enabled?: unknown }).enabled !== false : true;
    const lifetime = b.autoPause ? { timeoutMs: sessions.maxTimeoutMs(b.templateID), idleTimeoutMs: timeoutMs, autoPause: true } : { timeoutMs, idleTimeoutMs: SESSION_LIMITS.maxTimeoutMs };
    // E2B's volume mounts are name and path only: read-write, as E2B's are.
    const volumes = b.volumeMounts?.length ? { volumes: b.volumeMounts.map((v) => ({ name: v.name, path: v.path })) } : {};
    const s = await sessions.create({ template: b.templateID, ...lifetime, autoResume, ...(b.envVars ? { env: b.envVars } : {}), ...(b.metadata ? { metadata: b.metadata } : {}), ...volumes }, who);
    return c.json(sandbox(s, await sessions.accessToken(s.id, who)), 201);
  };
  app.openapi(routes.create, create);
  app.openapi(routes.createV2, create);

  // In page order: by start, then id (sandboxes started in the same millisecond keep one order).
  const running = async (who: AppEnv['Variables']['principal'], metadata: Record<string, string>): Promise<SessionView[]> =>
    (await sessions.list({ metadata }, who)).filter((s) => s.status !== 'lost').sort((a, b) => Date.parse(a.createdAt) - Date.parse(b.createdAt) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  app.openapi(routes.list, async (c) => {
    const q = c.req.valid('query');
    const states = (q.state ?? 'running,paused').split(',');
    if (states.some((s) => s !== 'running' && s !== 'paused')) throw new ValidationError(`state must be a comma-separated list of running and paused; got "${q.state}"`);
    const all = (await running(c.get('principal'), metadataQuery(q.metadata))).filter((s) => states.includes(s.status)).filter(after(q.nextToken));
    const limit = q.limit ?? MAX_PAGE;
    const page = all.slice(0, limit);
    if (all.length > limit) c.header('x-next-token', pageToken(page[page.length - 1] as SessionView));
    return c.json(page.map(detail), 200);
  });
  app.openapi(routes.listV1, async (c) => c.json((await running(c.get('principal'), metadataQuery(c.req.valid('query').metadata))).filter((s) => s.status === 'running').map(detail), 200));
  app.openapi(routes.get, async (c) => {
    const s = await sessions.get(c.req.valid('param').sandboxID, c.get('principal'));
    if (s.status === 'lost') return e2bError(c, 404, `sandbox "${s.id}" is gone (${s.lostReason ?? 'lost'})`) as never;
    return c.json(detail(s), 200);
  });
  app.openapi(routes.kill, async (c) => {
    await sessions.delete(c.req.valid('param').sandboxID, c.get('principal'), 'killed through the E2B API');
    return c.body(null, 204);
  });
  app.openapi(routes.timeout, async (c) => {
    // E2B's timeout 0 means now; Kiln's shortest expiry is one second from now.
    await sessions.keepalive(c.req.valid('param').sandboxID, c.get('principal'), Math.max(1, c.req.valid('json').timeout) * 1000);
    return c.body(null, 204);
  });
  app.openapi(routes.refresh, async (c) => {
    const raw = c.req.header('content-type')?.includes('json') ? ((await c.req.json().catch(() => ({}))) as { duration?: unknown }) : {};
    const s = await sessions.get(c.req.valid('param').sandboxID, c.get('principal'));
    const wanted = typeof raw.duration === 'number' ? raw.duration * 1000 : 0;
    // A refresh only ever extends: an expiry further away than `duration` stays.
    const keep = Math.max(wanted, Date.parse(s.expiresAt) - Date.now());
    await sessions.keepalive(s.id, c.get('principal'), Math.max(1000, Math.round(keep)));
    return c.body(null, 204);
  });
  app.openapi(routes.connect, async (c) => {
    const id = c.req.valid('param').sandboxID;
    const who = c.get('principal');
    const raw = c.req.header('content-type')?.includes('json') ? ((await c.req.json().catch(() => ({}))) as { timeout?: unknown }) : {};
    // Connecting to a paused sandbox resumes it, as E2B's does (keepalive below would too).
    if (lifecycle && (await sessions.get(id, who)).status === 'paused') await lifecycle.resume(id, who);
    const s = typeof raw.timeout === 'number' && raw.timeout > 0 ? await sessions.keepalive(id, who, raw.timeout * 1000) : await sessions.get(id, who);
    if (s.status !== 'running') return e2bError(c, 404, `sandbox "${s.id}" is gone (${s.lostReason ?? 'lost'})`) as never;
    return c.json(sandbox(s, await sessions.accessToken(id, who)), 200);
  });
  app.openapi(routes.pause, async (c) => {
    const id = c.req.valid('param').sandboxID;
    const who = c.get('principal');
    // Owner first, so another tenant learns nothing.
    const s = await sessions.get(id, who);
    if (!lifecycle) return e2bError(c, 409, 'this Kiln cannot pause sandboxes');
    // E2B's SDK reads 409 as "already paused" (pause() returns false).
    if (s.status === 'paused') return e2bError(c, 409, `sandbox "${id}" is already paused`);
    const raw = c.req.header('content-type')?.includes('json') ? ((await c.req.json().catch(() => ({}))) as { memory?: unknown }) : {};
    // keepMemory: false is a filesystem-only pause: Kiln's hibernation.
    if (raw.memory === false) await lifecycle.hibernate(id, who);
    else await lifecycle.pause(id, who);
    return c.body(null, 204);
  });
  return app;
}
