/**
 * `kiln tenants ...` and `kiln keys ...`: the admin API (api/routes/admin.ts) from a shell, with an
 * administrator key in KILN_API_KEY. Prints the API's JSON answer; a refusal is its error line
 * and exit status 1.
 */

export const ADMIN_HELP = `  tenants list                                  List tenants
  tenants create <id> [--description <text>]    Create a tenant
  tenants delete <id>                           Delete a tenant and its keys
  keys list <tenant>                            List a tenant's keys (never the keys themselves)
  keys create <tenant> [--scopes a,b] [--description <text>]
                                                Make a key; it is printed once, keep it
  keys delete <tenant> <key-id>                 Delete a key`;

/** The request an admin command makes, or a usage error. */
export function adminRequest(args: string[], opts: { description?: string; scopes?: string }): { method: string; path: string; body?: unknown } | string {
  const [noun, verb, a, b] = args;
  const t = (id: string | undefined): string | undefined => (id ? encodeURIComponent(id) : undefined);
  const withDescription = opts.description !== undefined ? { description: opts.description } : {};
  if (noun === 'tenants') {
    if (verb === 'list') return { method: 'GET', path: '/api/v1/admin/tenants' };
    if (verb === 'create' && a) return { method: 'POST', path: '/api/v1/admin/tenants', body: { id: a, ...withDescription } };
    if (verb === 'delete' && a) return { method: 'DELETE', path: `/api/v1/admin/tenants/${t(a)}` };
  }
  if (noun === 'keys') {
    if (verb === 'list' && a) return { method: 'GET', path: `/api/v1/admin/tenants/${t(a)}/keys` };
    if (verb === 'create' && a) {
      const scopes = opts.scopes?.split(',').map((s) => s.trim()).filter(Boolean);
      return { method: 'POST', path: `/api/v1/admin/tenants/${t(a)}/keys`, body: { ...(scopes?.length ? { scopes } : {}), ...withDescription } };
    }
    if (verb === 'delete' && a && b) return { method: 'DELETE', path: `/api/v1/admin/tenants/${t(a)}/keys/${t(b)}` };
  }
  return `usage:\n${ADMIN_HELP}`;
}

/** Sends an admin request to `base` with `key`; resolves to [exit status, text to print]. */
export async function sendAdmin(base: string, key: string | undefined, req: { method: string; path: string; body?: unknown }): Promise<[number, string]> {
  const res = await fetch(`${base}${req.path}`, {
    method: req.method,
    headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(req.body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(req.body !== undefined ? { body: JSON.stringify(req.body) } : {}),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  if (res.ok) return [0, text ? JSON.stringify(JSON.parse(text), null, 2) : `${req.method} ${req.path}: done`];
  let detail = text;
  try {
    const e = (JSON.parse(text) as { error?: { code?: string; message?: string } }).error;
    if (e) detail = `${e.code ?? res.status}: ${e.message ?? ''}`;
  } catch {
    // not JSON: the raw text says it
  }
  return [1, `${res.status} ${detail}`];
}
