import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { Context, MiddlewareHandler, Next } from 'hono';
import { errorBody } from './errors.js';
import type { AppEnv } from './router.js';
import type { Keyring } from '../tenancy/keyring.js';
import { IMPLICIT_PRINCIPAL, type Principal } from '../tenancy/principal.js';
import { log, logging, withLogContext } from '../log.js';

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

/** The key a request presents as `Authorization: Bearer <key>` or `x-api-key: <key>`. */
export function presentedKey(get: (name: string) => string | undefined): string | undefined {
  const bearer = /^Bearer\s+(\S+)$/i.exec(get('authorization') ?? '');
  return bearer?.[1] ?? get('x-api-key');
}

const MISSING = 'this endpoint needs an API key: send "Authorization: Bearer <key>" or "x-api-key: <key>"';
const UNKNOWN = 'the API key is not known here (deleted, mistyped, or another deployment\'s); check the key the client sends';

/**
 * Who the request is (REST, MCP, the PTY upgrade): the principal of the presented key; with no
 * keys configured (the embedded default on loopback), the implicit principal when the request
 * presents none or an unknown one. Undefined: refuse with 401 (`missing` says which message).
 */
export async function principalOf(keyring: Keyring, get: (name: string) => string | undefined): Promise<{ principal?: Principal; missing: boolean }> {
  const key = presentedKey(get);
  const found = key === undefined ? undefined : await keyring.authenticate(key);
  if (found) return { principal: found, missing: false };
  return keyring.required ? { missing: key === undefined } : { principal: IMPLICIT_PRINCIPAL, missing: false };
}

/**
 * Hands the request on as `principal`: on the context for the routes, and as the log context
 * (tenant and key id, never the key) for every line logged while it is handled, ending with an
 * info line of the request itself (cheap: log.ts batches lines into one write per event-loop turn).
 */
export async function enter(c: Context<AppEnv>, principal: Principal, next: Next): Promise<void> {
  c.set('principal', principal);
  await withLogContext({ tenant: principal.tenant, keyId: principal.keyId }, async () => {
    const started = performance.now();
    await next();
    if (logging('info')) log('info', 'request', { method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round((performance.now() - started) * 10) / 10 });
  });
}

/**
 * REST and MCP: puts the request's principal on the context (`c.get('principal')`), or answers
 * 401 `Unauthorized`. `skip` lists public paths (health, the OpenAPI document): they get none.
 */
export function authenticate(keyring: Keyring, skip: (path: string) => boolean = () => false): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (skip(c.req.path)) return next();
    const { principal, missing } = await principalOf(keyring, (n) => c.req.header(n));
    if (principal) return enter(c, principal, next);
    c.header('WWW-Authenticate', 'Bearer realm="kiln"');
    return c.json(errorBody('Unauthorized', missing ? MISSING : UNKNOWN), 401);
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
 * What a request's SigV4 signature says: no SigV4 `Authorization` header (`absent`); a refusal
 * to send as it is (stale date, unsigned host, tampered body); a signature no key's secret
 * matches (`mismatch`); or the principal of the key whose secret signed it. Used by the Lambda
 * API and by AWS_IAM function URLs (api/routes/function-url-serve.ts).
 */
export type SigV4Check = { outcome: 'absent' } | { outcome: 'refused'; response: Response } | { outcome: 'mismatch' } | { outcome: 'verified'; principal: Principal; service: string };

export async function checkSigV4(keyring: Keyring, c: Context): Promise<SigV4Check> {
  const m = SIGV4_HEADER.exec(c.req.header('authorization') ?? '');
  if (!m) return { outcome: 'absent' };
  const refused = (type: string, status: 401 | 403 | 413, message: string): SigV4Check => ({ outcome: 'refused', response: awsError(c, type, status, message) });
  const [, accessKeyId = '', date = '', region = '', service = '', signed = '', signature = ''] = m;
  const amzDate = c.req.header('x-amz-date') ?? '';
  const when = Date.parse(amzDate.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'));
  if (!amzDate.startsWith(date) || !Number.isFinite(when) || Math.abs(Date.now() - when) > SIGV4_SKEW_MS) {
    return refused('InvalidSignatureException', 403, 'X-Amz-Date is missing or more than 15 minutes from the server\'s clock; check the client\'s clock');
  }
  const signedHeaders = signed.split(';');
  if (!signedHeaders.includes('host')) return refused('InvalidSignatureException', 403, 'the signature must cover the host header');
  let payloadHash = c.req.header('x-amz-content-sha256');
  const claimed = payloadHash !== undefined && payloadHash !== 'UNSIGNED-PAYLOAD' && /^[0-9a-f]{64}$/.test(payloadHash);
  if (!claimed && Number(c.req.header('content-length') ?? 0) > SIGV4_MAX_BODY_BYTES) return refused('RequestTooLargeException', 413, `request body is larger than ${SIGV4_MAX_BODY_BYTES} bytes`);
  const secrets = await keyring.sigv4Secrets(accessKeyId);
  // No key to check against (a deployment without keys, as a developer runs it locally, or an
  // unknown key id): the answer is `mismatch` whatever the signature, so the body is not hashed
  // for it. A claimed body hash is still checked below: a tampered body is refused either way.
  if (secrets.length === 0 && !claimed) return { outcome: 'mismatch' };
  if (!claimed) {
    // Hono caches the body, so the route reads the same bytes again.
    payloadHash = createHash('sha256').update(Buffer.from(await c.req.arrayBuffer())).digest('hex');
  } else if (payloadHash !== createHash('sha256').update(Buffer.from(await c.req.arrayBuffer())).digest('hex')) {
    return refused('InvalidSignatureException', 403, 'the body does not match X-Amz-Content-Sha256');
  }
  // The body is as claimed; with no secret to try, the signature itself is not worth checking.
  if (secrets.length === 0) return { outcome: 'mismatch' };
  const canonical = canonicalRequest(c.req.method, new URL(c.req.url), (n) => c.req.header(n), signedHeaders, payloadHash);
  const scope = `${date}/${region}/${service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
  const given = Buffer.from(signature, 'hex');
  let signer: Principal | undefined;
  for (const { secret, principal } of secrets) {
    if (timingSafeEqual(createHmac('sha256', signingKey(secret, date, region, service)).update(toSign).digest(), given)) signer = principal;
  }
  return signer ? { outcome: 'verified', principal: signer, service } : { outcome: 'mismatch' };
}

/**
 * The Lambda API (/2015-03-31/...): the AWS SDK signs requests with SigV4. The access key id
 * names the key (a stored key's id, or an environment key's `env-...` id; any other id tries
 * every environment key, as clients set up before key ids did) and the key is the secret
 * access key. A request may instead carry a key like the REST API. Answers in Lambda's error
 * shape so the SDK raises a typed exception.
 */
export function requireSigV4OrApiKey(keyring: Keyring): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const bearer = presentedKey((n) => c.req.header(n));
    const byKey = bearer === undefined || /^AWS4-HMAC-SHA256 /.test(bearer) ? undefined : await keyring.authenticate(bearer);
    if (byKey) return enter(c, byKey, next);
    const check = await checkSigV4(keyring, c);
    if (check.outcome === 'verified') return enter(c, check.principal, next);
    if (check.outcome === 'refused') return check.response;
    if (!keyring.required) return enter(c, IMPLICIT_PRINCIPAL, next);
    if (check.outcome === 'absent') return awsError(c, 'UnrecognizedClientException', 401, 'sign the request with AWS SigV4 (access key id: the key id, secret access key: the API key), or send "Authorization: Bearer <key>"');
    return awsError(c, 'InvalidSignatureException', 403, 'the request signature does not match: the secret access key must be the API key its access key id names');
  };
}
