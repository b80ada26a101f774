import { describe, expect, it } from 'vitest';
import { checkCors, newUrlId, URL_ID } from '../../functions/urls.js';
import { urlTarget } from '../routes/function-url-serve.js';
import { clfTime, isTextType, preflight, urlEvent, urlResponse, withCors, type UrlRequest } from './url-event.js';

const request = (over: Partial<UrlRequest> = {}): UrlRequest => ({
  method: 'GET',
  rawPath: '/',
  rawQueryString: '',
  headers: [],
  body: new Uint8Array(),
  sourceIp: '10.0.0.1',
  protocol: 'HTTP/1.1',
  scheme: 'http',
  domainName: 'abc.lambda-url.example',
  urlId: 'abc',
  accountId: 'alpha',
  requestId: 'r-1',
  now: new Date(Date.UTC(2020, 2, 12, 19, 3, 58, 390)),
  ...over,
});

const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');

describe('the function URL event (payload format 2.0)', () => {
  it('splits cookies off, comma-joins repeated query parameters and headers, and leaves out what is absent', () => {
    const e = urlEvent(request({ rawQueryString: 'a=1&a=2&b=x+y&c=%2F', headers: [['Cookie', 'x=1; y=2'], ['X-Thing', 'v1, v2'], ['User-Agent', 'ua']] }));
    expect(e).toMatchObject({ cookies: ['x=1', 'y=2'], queryStringParameters: { a: '1,2', b: 'x y', c: '/' }, headers: { 'x-thing': 'v1, v2', 'user-agent': 'ua', 'x-forwarded-for': '10.0.0.1', 'x-forwarded-proto': 'http' }, isBase64Encoded: false });
    expect((e.headers as Record<string, string>).cookie).toBeUndefined();
    expect(e.requestContext).toMatchObject({ time: '12/Mar/2020:19:03:58 +0000', timeEpoch: 1584039838390, domainPrefix: 'abc', http: { userAgent: 'ua' } });
    const bare = urlEvent(request());
    expect('cookies' in bare || 'queryStringParameters' in bare || 'body' in bare).toBe(false);
  });

  it('sends text types as text and everything else (or no type) as base64', () => {
    for (const t of ['text/html; charset=utf-8', 'application/json', 'application/vnd.api+json', 'application/xml', 'image/svg+xml']) expect(isTextType(t), t).toBe(true);
    for (const t of [undefined, 'application/octet-stream', 'image/png', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) expect(isTextType(t), String(t)).toBe(false);
    const body = new Uint8Array([0, 255, 10]);
    expect(urlEvent(request({ body }))).toMatchObject({ body: 'AP8K', isBase64Encoded: true });
    expect(urlEvent(request({ body: Buffer.from('hé'), headers: [['content-type', 'text/plain']] }))).toMatchObject({ body: 'hé', isBase64Encoded: false });
    expect(clfTime(new Date(Date.UTC(2021, 0, 2, 3, 4, 5)))).toBe('02/Jan/2021:03:04:05 +0000');
  });
});

describe('the function URL response', () => {
  it('maps statusCode, headers, cookies and base64 bodies; other results are 200 JSON', () => {
    const r = urlResponse({ statusCode: 201, headers: { 'X-A': 'b', n: 3, 'Content-Length': '99' }, cookies: ['a=1', 'b=2'], body: 'AP8=', isBase64Encoded: true }, '');
    expect(r.status).toBe(201);
    expect(r.headers).toEqual([['x-a', 'b'], ['n', '3'], ['content-type', 'application/json'], ['set-cookie', 'a=1'], ['set-cookie', 'b=2']]);
    expect([...r.body]).toEqual([0, 255]);
    expect(urlResponse({ hello: 1 }, '{"hello": 1}')).toMatchObject({ status: 200, headers: [['content-type', 'application/json']] });
    expect(text(urlResponse({ hello: 1 }, '{"hello": 1}').body)).toBe('{"hello": 1}');
    expect(text(urlResponse('plain', '"plain"').body)).toBe('plain');
    expect(text(urlResponse(null, 'null').body)).toBe('null');
    expect(urlResponse({ statusCode: 204, body: 'dropped' }, '').body.length).toBe(0);
  });

  it('answers 502 for a response object HTTP cannot carry', () => {
    for (const bad of [{ statusCode: 'x' }, { statusCode: 99 }, { statusCode: 103 }, { statusCode: 700 }, { statusCode: 200, headers: [] }, { statusCode: 200, headers: { a: { b: 1 } } }, { statusCode: 200, headers: { 'bad name': 'x' } }, { statusCode: 200, headers: { a: 'x\r\nset-cookie: y' } }, { statusCode: 200, cookies: 'a=1' }, { statusCode: 200, cookies: ['a=1\nb'] }]) {
      expect(urlResponse(bad, '').status, JSON.stringify(bad)).toBe(502);
    }
  });
});

describe('function URL CORS', () => {
  const cors = { AllowOrigins: ['https://app.example'], AllowMethods: ['GET', 'POST'], AllowHeaders: ['*'], ExposeHeaders: ['x-a'], MaxAge: 10 };
  const get = (h: Record<string, string>) => (n: string) => h[n];
  it('answers allowed preflights and nothing for others', () => {
    const ok = preflight(cors, get({ origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-b, x-c' }));
    expect(Object.fromEntries(ok.headers)).toEqual({ 'access-control-allow-origin': 'https://app.example', vary: 'Origin', 'access-control-allow-methods': 'GET,POST', 'access-control-allow-headers': 'x-b, x-c', 'access-control-max-age': '10' });
    expect(preflight(cors, get({ origin: 'https://other.example', 'access-control-request-method': 'GET' })).headers).toEqual([]);
    expect(preflight(cors, get({ origin: 'https://app.example', 'access-control-request-method': 'PUT' })).headers).toEqual([]);
    expect(preflight({ AllowOrigins: ['*'], AllowMethods: ['*'] }, get({ origin: 'https://x.example', 'access-control-request-method': 'PATCH' })).headers).toContainEqual(['access-control-allow-origin', '*']);
    // With credentials the origin is named, never `*`.
    expect(preflight({ AllowOrigins: ['*'], AllowMethods: ['*'], AllowCredentials: true }, get({ origin: 'https://x.example', 'access-control-request-method': 'GET' })).headers).toContainEqual(['access-control-allow-origin', 'https://x.example']);
  });

  it('replaces a handler\'s CORS headers with the config\'s, and leaves them alone without a config', () => {
    const res = { status: 200, headers: [['access-control-allow-origin', '*'], ['x-a', '1']] as Array<[string, string]>, body: new Uint8Array() };
    expect(withCors(res, cors, 'https://other.example').headers).toEqual([['x-a', '1']]);
    expect(withCors(res, cors, 'https://app.example').headers).toEqual([['x-a', '1'], ['access-control-allow-origin', 'https://app.example'], ['vary', 'Origin'], ['access-control-expose-headers', 'x-a']]);
    expect(withCors(res, undefined, 'https://other.example')).toBe(res);
    expect(() => checkCors({ MaxAge: -1 })).toThrow(/MaxAge/);
    expect(() => checkCors({ AllowOrigins: ['has space'] })).toThrow(/AllowOrigins/);
  });
});

describe('function URL ids and routing', () => {
  it('makes 32-character ids and finds them by path or by Host, leaving every other request alone', () => {
    const id = newUrlId();
    expect(id).toMatch(URL_ID);
    expect(newUrlId()).not.toBe(id);
    expect(urlTarget('kiln:8080', `/lambda-url/${id}/a/b%20c`, `http://kiln:8080/lambda-url/${id}/a/b%20c?x=1`)).toEqual({ id, rawPath: '/a/b%20c', rawQuery: 'x=1', byHost: false });
    expect(urlTarget('kiln', `/lambda-url/${id}`, `http://kiln/lambda-url/${id}`)).toEqual({ id, rawPath: '/', rawQuery: '', byHost: false });
    expect(urlTarget(`${id.toUpperCase()}.lambda-url.example.com`, '/api/v1/x', `http://${id}.lambda-url.example.com/api/v1/x`)).toEqual({ id, rawPath: '/api/v1/x', rawQuery: '', byHost: true });
    expect(urlTarget('kiln', '/api/v1/functions', 'http://kiln/api/v1/functions')).toBeUndefined();
    expect(urlTarget('short.lambda-url.example', '/api/v1/functions', 'http://short.lambda-url.example/api/v1/functions')).toBeUndefined();
    expect(urlTarget('kiln', '/lambda-urlx/abc', 'http://kiln/lambda-urlx/abc')).toBeUndefined();
  });
});
