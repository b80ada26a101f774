import type { MiddlewareHandler } from 'hono';
import { errorBody } from './errors.js';

/**
 * Who may talk to Kiln from a browser. Kiln runs code on request, so a web page the operator
 * happens to visit must not be able to use it: not by posting a "simple" cross-site request
 * (no preflight) with its Origin, and not by DNS rebinding (a foreign name resolving to
 * 127.0.0.1, which makes the browser treat Kiln as that page's own origin).
 */
export interface BrowserPolicy {
  /** Host names the Host header may carry; undefined accepts any (a public deployment). */
  allowedHosts: string[] | undefined;
  /** Origins other than Kiln's own (scheme://host[:port]) whose pages may call it. */
  allowedOrigins: string[];
}

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '::1'];

/** Whether an address to listen on is loopback only. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** The default policy for a listen address: a loopback listener answers only to loopback names. */
export function browserPolicy(listenHost: string, allowedHosts: string[], allowedOrigins: string[]): BrowserPolicy {
  if (allowedHosts.length > 0) return { allowedHosts, allowedOrigins };
  return { allowedHosts: isLoopback(listenHost) ? LOOPBACK_NAMES : undefined, allowedOrigins };
}

/** Host name of a Host header value: "[::1]:8080" → "::1", "a.b:80" → "a.b". */
function hostName(host: string): string {
  if (host.startsWith('[')) return host.slice(1, host.indexOf(']'));
  const colon = host.lastIndexOf(':');
  return (colon === -1 ? host : host.slice(0, colon)).toLowerCase();
}

/** Why a request is refused, or undefined when the browser rules let it through. */
export function browserProblem(get: (name: string) => string | undefined, policy: BrowserPolicy): { code: string; message: string } | undefined {
  const host = get('host') ?? '';
  if (policy.allowedHosts) {
    const name = hostName(host);
    if (!policy.allowedHosts.includes(name) && !(policy.allowedHosts === LOOPBACK_NAMES && /^127\./.test(name))) {
      return { code: 'HostNotAllowed', message: `Host "${host.slice(0, 200)}" is not one this Kiln answers to (${policy.allowedHosts.join(', ')}); set KILN_ALLOWED_HOSTS to add names` };
    }
  }
  const origin = get('origin');
  if (origin === undefined) return undefined;
  let same = false;
  try {
    same = origin !== 'null' && new URL(origin).host === host.toLowerCase();
  } catch {
    // An unparsable Origin is refused below like a foreign one.
  }
  if (same || policy.allowedOrigins.includes(origin)) return undefined;
  return { code: 'OriginNotAllowed', message: `requests from pages of ${origin.slice(0, 200)} are refused; set KILN_ALLOWED_ORIGINS to allow an origin` };
}

/** The HTTP side of the policy (the PTY WebSocket checks the same in its upgrade handler). */
export function browserGuard(policy: BrowserPolicy): MiddlewareHandler {
  return async (c, next) => {
    const problem = browserProblem((n) => c.req.header(n), policy);
    if (problem) return c.json(errorBody(problem.code, problem.message), 403);
    return next();
  };
}

/**
 * The Lambda API's rule for unsigned requests: a body must be declared `application/json`.
 * A browser can send text/plain, a form or no type cross-site without a preflight, but it
 * cannot add a SigV4 `Authorization` (or an API key) header without one.
 */
export function lambdaContentType(): MiddlewareHandler {
  return async (c, next) => {
    if (c.req.method === 'GET' || c.req.method === 'HEAD' || c.req.method === 'DELETE') return next();
    if (c.req.header('authorization') || c.req.header('x-api-key')) return next();
    const type = (c.req.header('content-type') ?? '').split(';')[0]?.trim().toLowerCase();
    if (type === 'application/json') return next();
    c.header('x-amzn-ErrorType', 'UnsupportedMediaTypeException');
    const message = `an unsigned request must send Content-Type: application/json; got "${type ?? ''}"`;
    return c.json({ Type: 'User', message, Message: message }, 415);
  };
}
