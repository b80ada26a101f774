import type { MiddlewareHandler } from 'hono';
import type { SessionAgent } from '../../agent/session-client.js';
import { enter, principalOf } from '../auth.js';
import type { AppEnv } from '../router.js';
import { scopeOf } from '../scopes.js';
import { hasScope } from '../../tenancy/principal.js';
import type { Keyring } from '../../tenancy/keyring.js';
import { KilnError } from '../../errors.js';
import type { SessionRecord } from '../../sessions/records.js';
import type { SessionService } from '../../sessions/service.js';
import type { Quotas } from '../../tenancy/quotas.js';
import type { TokenBuckets } from '../rate-limit.js';
import { DEFAULT_TENANT } from '../../tenancy/principal.js';
import { e2bError } from './errors.js';
import { SessionAccessDeniedError } from '../../sessions/access-token.js';

/** The port of E2B's in-sandbox agent (envd): its Connect services, `/files` and `/health`. */
export const ENVD_PORT = '49983';
/** The port of E2B's code interpreter server (`/execute`, `/contexts`), served by Kiln's code contexts. */
export const JUPYTER_PORT = '49999';
/** The ports Kiln serves through the sandbox routes, each on its own paths. */
export type SandboxPort = typeof ENVD_PORT | typeof JUPYTER_PORT;

/**
 * The control API's key check, answering in E2B's shape: the SDK sends the key as `X-API-KEY`
 * (a Kiln key; api/auth.ts takes it), and a route's scope comes from the one table (scopes.ts).
 */
export function e2bAuthenticate(keyring: Keyring, publicPath: (path: string) => boolean): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (publicPath(c.req.path)) return next();
    const { principal, missing } = await principalOf(keyring, (n) => c.req.header(n));
    if (!principal) return e2bError(c, 401, missing ? 'this endpoint needs a Kiln API key: set E2B_API_KEY (sent as X-API-KEY)' : 'the API key is not known to this Kiln deployment');
    const scope = scopeOf(c.req.method, c.req.path);
    if (!hasScope(principal, scope)) return e2bError(c, 403, `this key (${principal.keyId}) does not have the "${scope}" scope this request needs`);
    // The principal on the context and as the log context, as for every other surface (auth.ts).
    return enter(c, principal, next);
  };
}

export class SandboxPortNotServedError extends KilnError {
  constructor(port: string, expected: SandboxPort) {
    const what = expected === ENVD_PORT ? `the sandbox agent's port ${ENVD_PORT}` : `the code interpreter's port ${JUPYTER_PORT}`;
    super('SandboxPortNotServed', 502, `this path is served on ${what} only (Kiln serves ${ENVD_PORT} and ${JUPYTER_PORT}); got E2b-Sandbox-Port ${port.slice(0, 20)}`, { port: port.slice(0, 20) });
  }
}

/**
 * The session a sandbox request is for: `E2b-Sandbox-Id` names it and `X-Access-Token` must be
 * its access token (sessions/access-token.ts; constant-time; one answer, 401, for an unknown
 * sandbox and a wrong token). No API key is involved: the token is the credential, as on E2B.
 *
 * `port` is the port the path belongs to; an `E2b-Sandbox-Port` naming another is refused. The
 * code interpreter's SDK sends the token as `X-Access-Token` on `/execute` only, and as
 * `E2B-Traffic-Access-Token` on every call when the sandbox has a traffic token: Kiln gives the
 * same token under both names (control.ts), so on 49999 either header carries it. A request
 * sending both must send the same token twice: a wrong one is never outvoted by a right one.
 */
export async function sandboxSession(sessions: SessionService, header: (name: string) => string | null | undefined, port: SandboxPort = ENVD_PORT): Promise<{ record: SessionRecord; agent: SessionAgent }> {
  const asked = header('e2b-sandbox-port');
  if (asked && asked !== port) throw new SandboxPortNotServedError(asked, port);
  const id = header('e2b-sandbox-id') ?? '';
  const access = header('x-access-token') ?? undefined;
  if (port === ENVD_PORT) return sessions.openWithToken(id, access);
  const traffic = header('e2b-traffic-access-token') ?? undefined;
  if (access !== undefined && traffic !== undefined && access !== traffic) throw new SessionAccessDeniedError(id);
  return sessions.openWithToken(id, access ?? traffic);
}

/** Opens the sandbox a sandbox-route request names (`sandboxOpener`), for a path of `port` (default envd's). */
export type SandboxOpener = (header: (name: string) => string | null | undefined, port?: SandboxPort) => Promise<{ record: SessionRecord; agent: SessionAgent }>;

/**
 * `sandboxSession` with the tenant's request rate (KILN_QUOTA_RPS) counted in the same buckets
 * as its REST, MCP and Lambda calls: a sandbox token is no way around the tenant's rate. The
 * tenant is known once the token matched, so only a request that opened its sandbox counts.
 */
export function sandboxOpener(sessions: SessionService, rate?: { quotas: Pick<Quotas, 'limits' | 'rateExceeded'>; buckets: TokenBuckets }): SandboxOpener {
  return async (header, port) => {
    const opened = await sandboxSession(sessions, header, port);
    if (rate) {
      const tenant = opened.record.tenant ?? DEFAULT_TENANT;
      const limit = (await rate.quotas.limits(tenant)).requestsPerSecond;
      if (!rate.buckets.take(tenant, limit)) throw rate.quotas.rateExceeded(tenant, limit);
    }
    return opened;
  };
}
