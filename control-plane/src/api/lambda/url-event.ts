import type { UrlCors } from '../../functions/urls.js';

/** An HTTP request to a function URL, as url-event.ts needs it (function-url-serve.ts fills it in). */
export interface UrlRequest {
  method: string;
  /** The path after the URL's own part, as sent (percent-encoding kept), starting with '/'. */
  rawPath: string;
  /** After '?', as sent. */
  rawQueryString: string;
  /** Header names and values as the HTTP layer joined them (one entry per name). */
  headers: Iterable<[string, string]>;
  body: Uint8Array;
  sourceIp: string;
  protocol: string;
  /** The scheme the request came in with (x-forwarded-proto unless a proxy set it). */
  scheme: string;
  domainName: string;
  urlId: string;
  /** The function's tenant: Lambda's account id. */
  accountId: string;
  requestId: string;
  now: Date;
  /** AWS_IAM URLs: who signed the request. */
  iam?: { accessKey: string; accountId: string; callerId: string };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n: number) => String(n).padStart(2, '0');

/** API Gateway's requestContext.time: `12/Mar/2020:19:03:58 +0000`. */
export function clfTime(d: Date): string {
  return `${pad(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
}

/**
 * Whether a body of this Content-Type reaches the handler as text; everything else (no type,
 * images, forms, octet streams) is base64 with isBase64Encoded, as Lambda does for function URLs.
 */
export function isTextType(contentType: string | undefined): boolean {
  const t = (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  return t.startsWith('text/') || /^application\/(json|javascript|ecmascript|xml|graphql|yaml|x-yaml)$/.test(t) || /\+(json|xml)$/.test(t);
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

/**
 * The function URL event (API Gateway HTTP API payload format 2.0): header names lower-cased,
 * repeated headers and query parameters comma-joined, the Cookie header split into `cookies`,
 * a body as text for text types and base64 otherwise. Absent parts are left out, as Lambda does.
 */
export function urlEvent(r: UrlRequest): Record<string, unknown> {
  const headers: Record<string, string> = {};
  let cookies: string[] = [];
  for (const [name, value] of r.headers) {
    const n = name.toLowerCase();
    if (n === 'cookie') cookies = cookies.concat(value.split(/;\s*/).filter(Boolean));
    else headers[n] = headers[n] === undefined ? value : `${headers[n]},${value}`;
  }
  headers['x-forwarded-for'] ??= r.sourceIp;
  headers['x-forwarded-proto'] ??= r.scheme;
  const query: Record<string, string> = {};
  for (const pair of r.rawQueryString.split('&').filter(Boolean)) {
    const eq = pair.indexOf('=');
    const k = decode(eq === -1 ? pair : pair.slice(0, eq));
    const v = eq === -1 ? '' : decode(pair.slice(eq + 1));
    query[k] = query[k] === undefined ? v : `${query[k]},${v}`;
  }
  const text = isTextType(headers['content-type']);
  const domainPrefix = r.domainName.split('.')[0] ?? r.domainName;
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: r.rawPath,
    rawQueryString: r.rawQueryString,
    ...(cookies.length ? { cookies } : {}),
    headers,
    ...(Object.keys(query).length ? { queryStringParameters: query } : {}),
    requestContext: {
      accountId: r.accountId,
      apiId: r.urlId,
      ...(r.iam ? { authorizer: { iam: { ...r.iam, cognitoIdentity: null, principalOrgId: null, userArn: `arn:aws:iam::${r.iam.accountId}:user/${r.iam.callerId}`, userId: r.iam.callerId } } } : {}),
      domainName: r.domainName,
      domainPrefix,
      http: { method: r.method, path: r.rawPath, protocol: r.protocol, sourceIp: r.sourceIp, userAgent: headers['user-agent'] ?? '' },
      requestId: r.requestId,
      routeKey: '$default',
      stage: '$default',
      time: clfTime(r.now),
      timeEpoch: r.now.getTime(),
    },
    ...(r.body.length ? { body: text ? Buffer.from(r.body).toString('utf8') : Buffer.from(r.body).toString('base64') } : {}),
    isBase64Encoded: r.body.length > 0 && !text,
  };
}

/** An HTTP response for a function URL: status, header pairs (Set-Cookie once per cookie) and body. */
export interface UrlResponse {
  status: number;
  headers: Array<[string, string]>;
  body: Uint8Array;
  /** A RESPONSE_STREAM URL's body, sent as it comes instead of `body` (url-stream.ts). */
  stream?: ReadableStream<Uint8Array>;
}

/** Headers the HTTP layer sets itself; a handler's values for them are dropped. */
const OWN_HEADERS = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive']);

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const NO_BODY = new Set([204, 205, 304]);

export const BAD_GATEWAY: UrlResponse = { status: 502, headers: [['content-type', 'application/json']], body: Buffer.from('{"Message":"Internal Server Error"}') };

/**
 * Maps a handler's result back to HTTP as Lambda does for function URLs: an object with
 * `statusCode` is a response (headers, cookies as Set-Cookie, body, base64 when
 * isBase64Encoded); a string is the body; any other JSON is the body as JSON. Both of the
 * latter are 200 application/json. A response object Lambda would reject is a 502.
 * `json` is the result's JSON text as the handler produced it (sent as is).
 */
export function urlResponse(result: unknown, json: string): UrlResponse {
  const typed: Array<[string, string]> = [['content-type', 'application/json']];
  if (typeof result === 'string') return { status: 200, headers: typed, body: Buffer.from(result) };
  if (!result || typeof result !== 'object' || Array.isArray(result) || !('statusCode' in result)) return { status: 200, headers: typed, body: Buffer.from(json) };
  const r = result as { statusCode: unknown; headers?: unknown; cookies?: unknown; body?: unknown; isBase64Encoded?: unknown };
  // 1xx cannot be a final answer over HTTP.
  if (typeof r.statusCode !== 'number' || !Number.isInteger(r.statusCode) || r.statusCode < 200 || r.statusCode > 599) return BAD_GATEWAY;
  const headers: Array<[string, string]> = [];
  if (r.headers !== undefined && r.headers !== null) {
    if (typeof r.headers !== 'object' || Array.isArray(r.headers)) return BAD_GATEWAY;
    for (const [k, v] of Object.entries(r.headers as Record<string, unknown>)) {
      if (v === null || v === undefined || OWN_HEADERS.has(k.toLowerCase())) continue;
      if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') return BAD_GATEWAY;
      // A header HTTP cannot carry (no name, a line break in the value) is the handler's fault.
      if (!HEADER_NAME.test(k) || /[\r\n\0]/.test(String(v))) return BAD_GATEWAY;
      headers.push([k.toLowerCase(), String(v)]);
    }
  }
  if (!headers.some(([k]) => k === 'content-type')) headers.push(['content-type', 'application/json']);
  if (r.cookies !== undefined && r.cookies !== null) {
    if (!Array.isArray(r.cookies)) return BAD_GATEWAY;
    for (const c of r.cookies) {
      if (typeof c !== 'string' || /[\r\n\0]/.test(c)) return BAD_GATEWAY;
      headers.push(['set-cookie', c]);
    }
  }
  let body: Uint8Array = Buffer.alloc(0);
  if (r.body !== undefined && r.body !== null) {
    const text = typeof r.body === 'string' ? r.body : JSON.stringify(r.body);
    body = r.isBase64Encoded === true ? Buffer.from(text, 'base64') : Buffer.from(text);
  }
  // These statuses have no body in HTTP; what a handler sent with one is dropped.
  return { status: r.statusCode, headers, body: NO_BODY.has(r.statusCode) ? Buffer.alloc(0) : body };
}

/** Whether a page of `origin` may read responses, by the URL's CORS config. */
function allowedOrigin(cors: UrlCors, origin: string): boolean {
  return (cors.AllowOrigins ?? []).some((o) => o === '*' || o.toLowerCase() === origin.toLowerCase());
}

function allowOriginHeaders(cors: UrlCors, origin: string): Array<[string, string]> {
  const any = (cors.AllowOrigins ?? []).includes('*') && !cors.AllowCredentials;
  return [['access-control-allow-origin', any ? '*' : origin], ['vary', 'Origin'], ...(cors.AllowCredentials ? [['access-control-allow-credentials', 'true'] as [string, string]] : [])];
}

/**
 * The answer to a CORS preflight (OPTIONS with Origin and Access-Control-Request-Method) for a
 * URL with a CORS config, given without invoking the function, as Lambda does. A disallowed
 * origin or method gets no CORS headers, so the browser stops there.
 */
export function preflight(cors: UrlCors, get: (name: string) => string | undefined): UrlResponse {
  const origin = get('origin') ?? '';
  const method = (get('access-control-request-method') ?? '').toUpperCase();
  const methods = cors.AllowMethods ?? [];
  if (!allowedOrigin(cors, origin) || !(methods.includes('*') || methods.includes(method))) return { status: 200, headers: [], body: Buffer.alloc(0) };
  const headers = allowOriginHeaders(cors, origin);
  headers.push(['access-control-allow-methods', methods.includes('*') ? method : methods.join(',')]);
  const requested = get('access-control-request-headers');
  const allowHeaders = cors.AllowHeaders ?? [];
  if (allowHeaders.length) headers.push(['access-control-allow-headers', allowHeaders.includes('*') && requested ? requested : allowHeaders.join(',')]);
  if (cors.MaxAge !== undefined) headers.push(['access-control-max-age', String(cors.MaxAge)]);
  return { status: 200, headers, body: Buffer.alloc(0) };
}

/**
 * CORS headers on an actual response: with a CORS config, the handler's own Access-Control-*
 * headers are replaced by the config's (Lambda overrides them), added only for allowed origins.
 */
export function withCors(res: UrlResponse, cors: UrlCors | undefined, origin: string | undefined): UrlResponse {
  if (!cors) return res;
  const headers = res.headers.filter(([k]) => !k.startsWith('access-control-'));
  if (origin !== undefined && allowedOrigin(cors, origin)) {
    headers.push(...allowOriginHeaders(cors, origin));
    if (cors.ExposeHeaders?.length) headers.push(['access-control-expose-headers', cors.ExposeHeaders.join(',')]);
  }
  return { ...res, headers };
}
