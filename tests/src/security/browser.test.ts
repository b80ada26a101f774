import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

// What a web page the operator visits can do to a Kiln on localhost with authentication off
// (the default): nothing. Requests are sent as a browser would send them, with raw fetch.

let k: TestKiln;
beforeAll(async () => {
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 0 } }, python: null, shell: null, provided: null } });
});
afterAll(async () => {
  await k?.stop();
});

const evil = 'https://evil.example';
const fnBody = JSON.stringify({ FunctionName: 'csrf', Runtime: 'nodejs20.x', Role: 'arn:aws:iam::000000000000:role/x', Handler: 'index.handler', Code: { ZipFile: '' } });

describe('cross-site requests and DNS rebinding are refused', () => {
  it('a page posting text/plain to the Lambda API (no preflight) gets 403 for its Origin, and 415 without one', async () => {
    const cross = await fetch(`${k.url}/2015-03-31/functions`, { method: 'POST', headers: { 'content-type': 'text/plain', origin: evil }, body: fnBody });
    expect(cross.status).toBe(403);
    expect(((await cross.json()) as { error: { code: string } }).error.code).toBe('OriginNotAllowed');
    // Without an Origin (a form from a privacy-stripping browser): unsigned and not JSON.
    const plain = await fetch(`${k.url}/2015-03-31/functions`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: fnBody });
    expect(plain.status).toBe(415);
    expect(plain.headers.get('x-amzn-errortype')).toBe('UnsupportedMediaTypeException');
    expect((await k.call('GET', '/2015-03-31/functions/csrf')).status).toBe(404);
  });

  it('a page posting to the REST API from another origin gets 403 and runs nothing', async () => {
    const res = await fetch(`${k.url}/api/v1/executions`, { method: 'POST', headers: { 'content-type': 'text/plain', origin: evil }, body: JSON.stringify({ code: 'exports.handler = async () => 1', language: 'nodejs', event: {} }) });
    expect(res.status).toBe(403);
    expect((await fetch(`${k.url}/api/v1/health`, { headers: { origin: 'null' } })).status).toBe(403);
    // Kiln's own pages (same origin) and non-browser clients (no Origin) are served.
    expect((await fetch(`${k.url}/api/v1/health`, { headers: { origin: k.url } })).status).toBe(200);
    expect((await fetch(`${k.url}/api/v1/health`)).status).toBe(200);
  });

  it('a rebound name (Host not a loopback name) is refused on the API and MCP', async () => {
    const { port } = new URL(k.url);
    // fetch() will not send a Host of our choosing; a browser after DNS rebinding does.
    const rebound = (method: string, path: string, body?: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, method, path, headers: { host: `attacker.example:${port}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' } }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        });
        req.on('error', reject);
        req.end(body);
      });
    for (const [method, path] of [['GET', '/api/v1/health'], ['POST', '/mcp/full'], ['POST', '/2015-03-31/functions']] as const) {
      const res = await rebound(method, path, method === 'POST' ? '{}' : undefined);
      expect(res.status, path).toBe(403);
      expect(JSON.parse(res.body).error.code).toBe('HostNotAllowed');
    }
    const mcpCross = await fetch(`${k.url}/mcp/full`, { method: 'POST', headers: { origin: evil, 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'x', version: '1' } } }) });
    expect(mcpCross.status).toBe(403);
  });

  it('the PTY WebSocket refuses a foreign Origin before looking at the session', async () => {
    const ws = new WebSocket(`${k.url.replace('http', 'ws')}/api/v1/sessions/ses_x/pty`, { origin: evil });
    const status = await new Promise<number>((resolve) => {
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => resolve(101));
      ws.on('error', () => undefined);
    });
    ws.terminate();
    expect(status).toBe(403);
  });
});
