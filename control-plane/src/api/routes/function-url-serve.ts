import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import { KilnError, unavailableOr } from '../../errors.js';
import { SYNC_PAYLOAD_BYTES, type FunctionInvoker } from '../../functions/invoker.js';
import type { FunctionUrlRecord, FunctionUrlService } from '../../functions/urls.js';
import { resultValue, type ExecutionRecord } from '../../invocation/contract.js';
import { log, withLogContext } from '../../log.js';
import type { Keyring } from '../../tenancy/keyring.js';
import { canReach, hasScope, IMPLICIT_PRINCIPAL, principal, type Principal } from '../../tenancy/principal.js';
import type { Quotas } from '../../tenancy/quotas.js';
import { checkSigV4 } from '../auth.js';
import type { TokenBuckets } from '../rate-limit.js';
import type { AppEnv } from '../router.js';
import { BAD_GATEWAY, preflight, urlEvent, urlResponse, withCors, type UrlResponse } from '../lambda/url-event.js';
import { failedUrlResponse, streamedUrlResponse } from '../lambda/url-stream.js';
import type { ChunkListener } from '../../invocation/stream.js';

/** The path form of a function URL: `/lambda-url/<id>/<path>`. */
export const URL_PATH_PREFIX = '/lambda-url/';
/** The Host form: `<id>.lambda-url.<anything>`, for a wildcard DNS name pointing at Kiln. */
const URL_HOST = /^([a-z0-9]{32})\.lambda-url\./i;

export interface FunctionUrlServeDeps {
  urls: FunctionUrlService;
  invoker: FunctionInvoker;
  keyring: Keyring;
  /** The tenants' request-rate quota, with the buckets the API counts in (one rate per tenant). */
  rate?: { quotas: Pick<Quotas, 'limits'>; buckets: TokenBuckets };
}

const message = (status: number, text: string): UrlResponse => ({ status, headers: [['content-type', 'application/json']], body: Buffer.from(JSON.stringify({ Message: text })) });

/** Which URL id and path a request addresses, or undefined when it is not a function URL request. */
export function urlTarget(host: string | undefined, path: string, rawUrl: string): { id: string; rawPath: string; rawQuery: string; byHost: boolean } | undefined {
  // Every request passes here: the cheap checks first.
  const byHost = host !== undefined && host.includes('.lambda-url.') ? URL_HOST.exec(host) : null;
  if (!byHost && !path.startsWith(URL_PATH_PREFIX)) return undefined;
  const q = rawUrl.indexOf('?');
  const rawQuery = q === -1 ? '' : rawUrl.slice(q + 1);
  // The raw path as sent, not Hono's decoded one.
  const rawPathAll = new URL(rawUrl).pathname;
  if (byHost?.[1]) return { id: byHost[1].toLowerCase(), rawPath: rawPathAll, rawQuery, byHost: true };
  const rest = rawPathAll.slice(URL_PATH_PREFIX.length);
  const slash = rest.indexOf('/');
  return { id: slash === -1 ? rest : rest.slice(0, slash), rawPath: slash === -1 ? '/' : rest.slice(slash), rawQuery, byHost: false };
}

/**
 * On every answer of the path form, which shares Kiln's own origin: a page a function serves
 * there runs as an opaque origin (no storage of Kiln's origin, requests with `Origin: null`,
 * which the API refuses), so a function's page (or an XSS in one) cannot act as Kiln's origin.
 * Added to whatever CSP the function sends: browsers enforce every policy they get.
 */
const PATH_FORM_CSP = 'sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads';

function send(c: Context, answer: UrlResponse, pathForm: boolean): Response {
  let r = answer;
  let headers = new Headers();
  try {
    for (const [k, v] of r.headers) headers.append(k, v);
  } catch {
    // A value HTTP cannot carry (characters past Latin-1): the handler's answer is a bad gateway's.
    r = BAD_GATEWAY;
    headers = new Headers(BAD_GATEWAY.headers);
  }
  if (pathForm) headers.append('content-security-policy', PATH_FORM_CSP);
  const body = r.stream ?? (r.body.length === 0 ? null : r.body);
  return new Response(c.req.method === 'HEAD' ? null : body, { status: r.status, headers });
}

/**
 * Serves function URLs, first of all middleware (app.ts): a request for one (path or Host
 * form) is answered here and never reaches the API's own middleware or routes, which is why
 * the browser Origin/Host policy can skip it without opening anything else. NONE URLs serve
 * anyone; AWS_IAM ones want SigV4 by a key of the function's tenant with the invoke scope (or
 * an administrator's). Each request counts against the function's tenant's request rate and
 * runs through the one invocation path as a synchronous invoke of that tenant.
 */
export function functionUrlServer(deps: FunctionUrlServeDeps): MiddlewareHandler<AppEnv> {
  const limit = (pathForm: boolean) => bodyLimit({ maxSize: SYNC_PAYLOAD_BYTES, onError: (c) => send(c, message(413, 'Request Entity Too Large'), pathForm) });
  const limits = { path: limit(true), host: limit(false) };
  return async (c, next) => {
    const where = urlTarget(c.req.header('host'), c.req.path, c.req.url);
    if (!where) return next();
    const pathForm = !where.byHost;
    try {
      const record = await deps.urls.resolve(where.id);
      if (!record) return send(c, message(404, 'Not Found'), pathForm);
      const cors = record.cors;
      if (cors && c.req.method === 'OPTIONS' && c.req.header('origin') !== undefined && c.req.header('access-control-request-method') !== undefined) {
        return send(c, preflight(cors, (n) => c.req.header(n)), pathForm);
      }
      let answer: UrlResponse | undefined;
      const refused = await limits[pathForm ? 'path' : 'host'](c, async () => {
        answer = await handle(c, deps, record, where);
      });
      if (refused instanceof Response) return refused;
      return send(c, withCors(answer ?? BAD_GATEWAY, cors, c.req.header('origin')), pathForm);
    } catch (thrown) {
      return send(c, failure(thrown), pathForm);
    }
  };
}

async function handle(c: Context, deps: FunctionUrlServeDeps, record: FunctionUrlRecord, where: { id: string; rawPath: string; rawQuery: string }): Promise<UrlResponse> {
  const caller = await callerOf(c, deps.keyring, record);
  if (!caller) return message(403, 'Forbidden');
  if (deps.rate) {
    // The owner's rate, whoever calls: a public URL must not let strangers spend more than the owner may.
    const rate = (await deps.rate.quotas.limits(record.tenant)).requestsPerSecond;
    if (!deps.rate.buckets.take(record.tenant, rate)) return { ...message(429, 'Rate Exceeded.'), headers: [['content-type', 'application/json'], ['retry-after', '1']] };
  }
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  const body = new Uint8Array(await c.req.arrayBuffer());
  const now = new Date();
  const event = urlEvent({
    method: c.req.method,
    rawPath: where.rawPath,
    rawQueryString: where.rawQuery,
    headers: c.req.raw.headers.entries(),
    body,
    // An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d; Lambda writes a.b.c.d.
    sourceIp: (incoming?.socket.remoteAddress ?? '').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, ''),
    protocol: `HTTP/${incoming?.httpVersion ?? '1.1'}`,
    scheme: new URL(c.req.url).protocol.replace(/:$/, ''),
    domainName: (c.req.header('host') ?? '').replace(/:\d+$/, ''),
    urlId: record.id,
    accountId: record.tenant,
    requestId: randomUUID(),
    now,
    ...(record.authType === 'AWS_IAM' ? { iam: { accessKey: caller.keyId, accountId: caller.tenant, callerId: caller.keyId } } : {}),
  });
  // Logged as the function's tenant and the caller's key id (the URL's own for NONE), as requests are.
  const run = (onChunk?: ChunkListener) =>
    withLogContext({ tenant: record.tenant, keyId: caller.keyId }, () =>
      deps.invoker.invoke(caller, { name: record.name, tenant: record.tenant }, record.qualifier || undefined, JSON.stringify(event), 'RequestResponse', undefined, undefined, onChunk),
    );
  if (record.invokeMode === 'RESPONSE_STREAM') return streamedUrlResponse(run);
  const out = await run();
  const failed = failedUrlResponse(out);
  if (failed) return failed;
  const r = out.record as ExecutionRecord;
  const id: [string, string] = ['x-amzn-requestid', out.id];
  // The handler's JSON as its runner wrote it (invocation/contract.ts `resultJson`), parsed once here.
  let json = r.resultJson ?? JSON.stringify(r.result ?? null);
  let result: unknown = resultValue(r) ?? null;
  if (r.resultBase64 !== undefined) {
    // A custom runtime's bytes: JSON like any handler's result, or a 502 as Lambda gives.
    json = Buffer.from(r.resultBase64, 'base64').toString('utf8');
    try {
      result = JSON.parse(json);
    } catch {
      return { ...BAD_GATEWAY, headers: [...BAD_GATEWAY.headers, id] };
    }
  }
  const res = urlResponse(result, json);
  return { ...res, headers: [...res.headers, id] };
}

/**
 * Who the invocation runs as. NONE: the URL itself, as its tenant with the invoke scope only.
 * AWS_IAM: the SigV4 signer, if it may invoke the function's tenant's functions. With no keys
 * configured a signature cannot be checked, but one must still be present: a web page cannot
 * add one without passing the URL's CORS config, so the open default stays closed to pages.
 */
async function callerOf(c: Context, keyring: Keyring, record: FunctionUrlRecord): Promise<Principal | undefined> {
  // No part of the id in the key id: it ends up in logs, and the id is the URL's only secret.
  if (record.authType === 'NONE') return principal(record.tenant, 'function-url', ['invoke']);
  const check = await checkSigV4(keyring, c);
  // Signed for Lambda, as AWS wants for function URLs: a signature made for another service is not an invoke.
  if (check.outcome === 'verified') return check.service === 'lambda' && canReach(check.principal, record.tenant) && hasScope(check.principal, 'invoke') ? check.principal : undefined;
  if (check.outcome === 'mismatch' && !keyring.required) return IMPLICIT_PRINCIPAL;
  return undefined;
}

/** Kiln's own failures as HTTP: throttling 429, bad input 4xx, the rest 5xx (logged). */
function failure(thrown: unknown): UrlResponse {
  const err = unavailableOr(thrown);
  // The body limit, when a body without Content-Length runs over it while being read.
  if (err instanceof HTTPException && err.status === 413) return message(413, 'Request Entity Too Large');
  if (err instanceof KilnError) {
    if (err.code === 'QuotaExceeded' || err.status === 429) return { ...message(429, 'Rate Exceeded.'), headers: [['content-type', 'application/json'], ['retry-after', '1']] };
    if (err.status === 413) return message(413, 'Request Entity Too Large');
    if (err.status === 404) return message(404, 'Not Found');
    if (err.status < 500) return message(400, err.message);
    return message(err.status === 503 ? 503 : 500, err.status === 503 ? 'Service Unavailable' : 'Internal Server Error');
  }
  log('error', 'unhandled error serving a function URL', { error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  return message(500, 'Internal Server Error');
}
