import type { Hono, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { SessionService } from '../../sessions/service.js';
import type { TemplateRegistry } from '../../templates/registry.js';
import type { Keyring } from '../../tenancy/keyring.js';
import type { Quotas } from '../../tenancy/quotas.js';
import { jsonDepthGuard } from '../json-depth.js';
import { rateLimit, type TokenBuckets } from '../rate-limit.js';
import type { AppEnv } from '../router.js';
import { e2bAuthenticate, sandboxOpener } from './access.js';
import { mountConnect } from './connect.js';
import { e2bControlRoutes } from './control.js';
import type { SessionLifecycle } from '../../sessions/lifecycle.js';
import { e2bError, onE2bError } from './errors.js';
import { e2bProcessService } from './process-service.js';
import { Process } from '@kiln/proto/e2b/process/process_pb';
import { Filesystem } from '@kiln/proto/e2b/filesystem/filesystem_pb';
import { e2bFilesystemService } from './filesystem-service.js';
import { e2bFileRoutes } from './files-http.js';
import type { UploadSlots } from '../upload-slots.js';
import { e2bCodeInterpreterRoutes } from './code-interpreter.js';

/** Where the E2B surfaces live: E2B_API_URL is `<kiln>/e2b`, E2B_SANDBOX_URL `<kiln>/e2b/sandbox`. */
export const E2B_PREFIX = '/e2b';
const SANDBOX_PREFIX = `${E2B_PREFIX}/sandbox`;
const CONTROL_BODY_MAX_BYTES = 1024 * 1024;

export interface E2bDeps {
  sessions: SessionService;
  /** Pause and resume (sessions/lifecycle.ts); without it pause answers 409. */
  lifecycle?: SessionLifecycle;
  templates: TemplateRegistry;
  keyring: Keyring;
  rate?: { quotas: Pick<Quotas, 'limits' | 'rateExceeded'>; buckets: TokenBuckets };
  /** Uploads a tenant streams at once (api/upload-slots.ts). */
  uploads: UploadSlots;
}

const isSandboxPath = (path: string): boolean => path === SANDBOX_PREFIX || path.startsWith(`${SANDBOX_PREFIX}/`);

/**
 * E2B compatibility: the official E2B SDKs work against Kiln with E2B_API_URL, E2B_SANDBOX_URL
 * and E2B_API_KEY (a Kiln key). The control API (`/e2b/...`) maps sandboxes onto sessions for
 * the key's tenant; the sandbox routes (`/e2b/sandbox/...`: envd's Connect services, `/files`,
 * `/health`, and the code interpreter's `/execute` and `/contexts` of port 49999) take the
 * sandbox's access token instead of a key.
 */
export function mountE2b(app: Hono<AppEnv>, deps: E2bDeps): void {
  const publicPath = (path: string): boolean => path === `${E2B_PREFIX}/health` || isSandboxPath(path);
  const controlOnly =
    (mw: MiddlewareHandler<AppEnv>): MiddlewareHandler<AppEnv> =>
    async (c, next) =>
      isSandboxPath(c.req.path) ? next() : mw(c, next);
  const control = (mw: MiddlewareHandler<AppEnv>): void => void app.use(`${E2B_PREFIX}/*`, controlOnly(mw));
  control(e2bAuthenticate(deps.keyring, publicPath));
  if (deps.rate) control(rateLimit(deps.rate.quotas, deps.rate.buckets, onE2bError));
  control(bodyLimit({ maxSize: CONTROL_BODY_MAX_BYTES, onError: (c) => e2bError(c, 413, `request body is larger than ${CONTROL_BODY_MAX_BYTES} bytes`) }));
  control(jsonDepthGuard(() => false));
  app.get(`${E2B_PREFIX}/health`, (c) => c.json({ status: 'ok' }, 200));
  const opener = sandboxOpener(deps.sessions, deps.rate);
  mountConnect(app, SANDBOX_PREFIX, (router) => {
    router.service(Process, e2bProcessService(opener));
    router.service(Filesystem, e2bFilesystemService(opener));
  });
  app.route('/', e2bFileRoutes(opener, SANDBOX_PREFIX, deps.uploads));
  // Port 49999: E2B's code interpreter server, over Kiln's code contexts.
  app.route('/', e2bCodeInterpreterRoutes(opener, SANDBOX_PREFIX));
  app.route('/', e2bControlRoutes(deps.sessions, deps.templates, deps.lifecycle));
}
