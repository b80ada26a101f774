import { KilnError } from '../errors.js';

/**
 * What a key may do. `admin` implies every other scope and reaches every tenant's resources;
 * the others act on the key's own tenant only:
 * - `read`: list and get (sessions, functions, executions, dead letters, templates);
 * - `sessions`: create, use (processes, files, terminals, NFS) and delete sessions;
 * - `functions`: deploy (create, update, publish, delete functions);
 * - `invoke`: run code (executions, function invocations, dead-letter replays).
 */
export const SCOPES = ['admin', 'sessions', 'functions', 'invoke', 'read'] as const;
export type Scope = (typeof SCOPES)[number];

/** What a key that names no scopes gets: everything its tenant owns, nothing of the deployment's. */
export const TENANT_SCOPES: readonly Scope[] = ['sessions', 'functions', 'invoke', 'read'];

/**
 * The tenant of the implicit principal (no keys configured: the embedded default, on loopback)
 * and the owner of resources made before tenants existed.
 */
export const DEFAULT_TENANT = 'default';

/**
 * Tenant ids: they appear in ARNs (as the account id's place), Redis keys and metric labels. Not
 * twelve digits: ARNs with a 12-digit account id (AWS's) mean the caller's own tenant.
 */
export const TENANT_ID = /^(?![0-9]{12}$)[a-z0-9][a-z0-9-]{0,62}$/;

/** Who a request acts as: the tenant whose resources it reaches, and the key (by id, never its secret). */
export interface Principal {
  readonly tenant: string;
  /** The key's id, for logs and audit; `anonymous` for the implicit principal. */
  readonly keyId: string;
  readonly scopes: ReadonlySet<Scope>;
}

export function principal(tenant: string, keyId: string, scopes: Iterable<Scope>): Principal {
  return { tenant, keyId, scopes: new Set(scopes) };
}

/** No keys configured: one implicit tenant that may do everything (Kiln then listens on loopback only). */
export const IMPLICIT_PRINCIPAL: Principal = principal(DEFAULT_TENANT, 'anonymous', SCOPES);

export function isAdmin(p: Principal): boolean {
  return p.scopes.has('admin');
}

export function hasScope(p: Principal, scope: Scope): boolean {
  return p.scopes.has(scope) || p.scopes.has('admin');
}

/**
 * Whether `p` may reach a resource owned by `tenant` (absent: made before tenants, the default
 * tenant's). Callers answer 404 when it may not, never 403: another tenant's resources do not
 * exist as far as this key can tell.
 */
export function canReach(p: Principal, tenant: string | undefined): boolean {
  return isAdmin(p) || (tenant ?? DEFAULT_TENANT) === p.tenant;
}

/** The key lacks the scope a route needs (403: the key is known, the act is not allowed). */
export class ScopeError extends KilnError {
  constructor(scope: Scope, p: Principal) {
    super('Forbidden', 403, `this key (${p.keyId}) does not have the "${scope}" scope this request needs`, { scope, keyId: p.keyId });
  }
}

export function requireScope(p: Principal, scope: Scope): void {
  if (!hasScope(p, scope)) throw new ScopeError(scope, p);
}
