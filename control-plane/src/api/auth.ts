import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { Context, MiddlewareHandler } from 'hono';
import { errorBody } from './errors.js';

/** How far a SigV4 request's X-Amz-Date may be from now, as AWS allows. */
const SIGV4_SKEW_MS = 15 * 60_000;
/** Bodies hashed for SigV4 are read into memory; the Lambda routes' own limit is 70 MB. */
const SIGV4_MAX_BODY_BYTES = 70 * 1024 * 1024;
const SIGV4_HEADER = /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\/(\d{8})\/([^/,\s]+)\/([^/,\s]+)\/aws4_request,\s*SignedHeaders=([a-z0-9;_.-]+),\s*Signature=([0-9a-f]{64})$/;

/** An AWS-shaped refusal: the SDK picks its exception class from x-amzn-ErrorType. */
function awsError(c: Context, type: string, status: 401 | 403 | 413, message: string): Response {
  c.header('x-amzn-ErrorType', type);
  return c.json({ Type: 'User', message, Message: message }, status);
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** Compares a presented key with every configured one in constant time (per key). */
function knownKey(keys: string[], presented: string): boolean {
  const p = digest(presented);
  let found = false;
  for (const k of keys) found = timingSafeEqual(digest(k), p) || found;
  return found;
}

/** The key a request presents as `Authorization: Bearer <key>` or `x-api-key: <key>`. */
export function presentedKey(get: (name: string) => string | undefined): string | undefined {
  const bearer = /^Bearer\s+(\S+)$/i.exec(get('authorization') ?? '');
  return bearer?.[1] ?? get('x-api-key');
}

/** True when auth is off or the headers carry a configured key (used by the PTY upgrade too). */
export function hasApiKey(keys: string[], get: (name: string) => string | undefined): boolean {
  if (keys.length === 0) return true;
  const key = presentedKey(get);
  return key !== undefined && knownKey(keys, key);
}

const MISSING = 'this endpoint needs an API key: send "Authorization: Bearer <key>" or "x-api-key: <key>" with one of the keys in KILN_API_KEYS';

/** REST and MCP: 401 `Unauthorized` unless a configured key is presented. `skip` lists public paths. */
export function requireApiKey(keys: string[], skip: (path: string) => boolean = () => false): MiddlewareHandler {
  return async (c, next) => {
    if (keys.length === 0 || skip(c.req.path) || hasApiKey(keys, (n) => c.req.header(n))) return next();
    c.header('WWW-Authenticate', 'Bearer realm="kiln"');
    return c.json(errorBody('Unauthorized', presentedKey((n) => c.req.header(n)) === undefined ? MISSING : 'the API key is not one of KILN_API_KEYS; check the key the client sends'), 401);
  };
}

/**
 * Routes only administrators may use (template changes): once any key is configured, 403
 * `Forbidden` unless the presented key is one of `adminKeys`. With no keys at all (the embedded
 * default on loopback) they stay open, like every route.
 */
export function requireAdminKey(keys: string[], adminKeys: string[]): MiddlewareHandler {
  return async (c, next) => {
    if (keys.length === 0) return next();
    // With no administrator keys configured nobody may change templates over the API.
    if (adminKeys.length > 0 && hasApiKey(adminKeys, (n) => c.req.header(n))) return next();
    return c.json(errorBody('Forbidden', adminKeys.length ? 'changing templates needs an administrator key (one of KILN_ADMIN_API_KEYS)' : 'templates are read-only here: set KILN_ADMIN_API_KEYS and use one of those keys to change them'), 403);
  };
}

/** RFC 3986 encoding, as SigV4 canonicalises paths and query strings. */
function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`);
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, '%20'));
  } catch {
    return s;
  }
}

/** The SigV4 canonical request of what arrived, for the headers the client says it signed. */
function canonicalRequest(method: string, url: URL, header: (n: string) => string | undefined, signedHeaders: string[], payloadHash: string): string {
  // Lambda (unlike S3) signs the path encoded once more over its wire form.
  const path = url.pathname.split('/').map((seg) => uriEncode(seg)).join('/');
  const query = [...url.search.replace(/^\?/, '').split('&').filter(Boolean)]
    .map((pair) => {
      const [k = '', v = ''] = pair.split('=');
      return [uriEncode(safeDecode(k)), uriEncode(safeDecode(v))] as const;
    })
    .sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const headers = signedHeaders.map((h) => `${h}:${(header(h) ?? '').trim().replace(/\s+/g, ' ')}\n`).join('');
  return [method, path, query, headers, signedHeaders.join(';'), payloadHash].join('\n');
}

function signingKey(secret: string, date: string, region: string, service: string): Buffer {
  const h = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();
  return h(h(h(h(`AWS4${secret}`, date), region), service), 'aws4_request');
}

/**
 * The Lambda API (/2015-03-31/...): the AWS SDK signs requests with SigV4, so a request is
 * accepted when its signature verifies with one of the API keys as the secret access key
 * (any access key id), or when it carries a key like the REST API. Answers in Lambda's
 * error shape so the SDK raises a typed exception.
 */
export function requireSigV4OrApiKey(keys: string[]): MiddlewareHandler {
  return async (c, next) => {
    if (keys.length === 0 || hasApiKey(keys, (n) => c.req.header(n))) return next();
    const m = SIGV4_HEADER.exec(c.req.header('authorization') ?? '');
    if (!m) return awsError(c, 'UnrecognizedClientException', 401, 'sign the request with AWS SigV4 using one of KILN_API_KEYS as the secret access key, or send "Authorization: Bearer <key>"');
    const [, , date = '', region = '', service = '', signed = '', signature = ''] = m;
    const amzDate = c.req.header('x-amz-date') ?? '';
    const when = Date.parse(amzDate.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'));
    if (!amzDate.startsWith(date) || !Number.isFinite(when) || Math.abs(Date.now() - when) > SIGV4_SKEW_MS) {
      return awsError(c, 'InvalidSignatureException', 403, 'X-Amz-Date is missing or more than 15 minutes from the server\'s clock; check the client\'s clock');
    }
    const signedHeaders = signed.split(';');
    if (!signedHeaders.includes('host')) return awsError(c, 'InvalidSignatureException', 403, 'the signature must cover the host header');
    let payloadHash = c.req.header('x-amz-content-sha256');
    if (!payloadHash || payloadHash === 'UNSIGNED-PAYLOAD' || !/^[0-9a-f]{64}$/.test(payloadHash)) {
      if (Number(c.req.header('content-length') ?? 0) > SIGV4_MAX_BODY_BYTES) return awsError(c, 'RequestTooLargeException', 413, `request body is larger than ${SIGV4_MAX_BODY_BYTES} bytes`);
      // Hono caches the body, so the route reads the same bytes again.
      payloadHash = createHash('sha256').update(Buffer.from(await c.req.arrayBuffer())).digest('hex');
    } else if (payloadHash !== createHash('sha256').update(Buffer.from(await c.req.arrayBuffer())).digest('hex')) {
      return awsError(c, 'InvalidSignatureException', 403, 'the body does not match X-Amz-Content-Sha256');
    }
    const canonical = canonicalRequest(c.req.method, new URL(c.req.url), (n) => c.req.header(n), signedHeaders, payloadHash);
    const scope = `${date}/${region}/${service}/aws4_request`;
    const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
    const given = Buffer.from(signature, 'hex');
    let valid = false;
    for (const key of keys) valid = timingSafeEqual(createHmac('sha256', signingKey(key, date, region, service)).update(toSign).digest(), given) || valid;
    if (!valid) return awsError(c, 'InvalidSignatureException', 403, 'the request signature does not match: the secret access key must be one of KILN_API_KEYS');
    return next();
  };
}
