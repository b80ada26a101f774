import { createHash, randomBytes } from 'node:crypto';
import { GetFunctionCommand, LambdaClient, ResourceNotFoundException } from '@aws-sdk/client-lambda';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import WebSocket from 'ws';
import { disposeKilnProcess, startKilnProcess, testDirs, type KilnProcess } from '../support/kiln.js';

/**
 * The control plane's log, as an operator reads it: every line about a request names the tenant
 * and the key's id, on every surface (REST, the Lambda API over SigV4, MCP, the terminal
 * WebSocket), and lines logged for a queued job name its tenant; the key itself never appears.
 */
const KEY = `acme-${randomBytes(16).toString('hex')}`;
const KEY_ID = `env-${createHash('sha256').update(KEY).digest('hex').slice(0, 12)}`;

let dirs: { dataDir: string; templatesDir: string };
let kiln: KilnProcess | undefined;
let prefix: string;
beforeAll(async () => {
  dirs = testDirs({ nodejs: { pool: { minIdle: 1 } }, python: null, shell: null, provided: null });
  prefix = `t${randomBytes(4).toString('hex')}`;
  kiln = await startKilnProcess({
    KILN_REDIS_URL: `unix://${inject('redisSocket')}`,
    KILN_REDIS_PREFIX: prefix,
    KILN_DATA_DIR: dirs.dataDir,
    KILN_TEMPLATES_DIR: dirs.templatesDir,
    KILN_API_KEYS: `acme:${KEY}`,
    KILN_LOG_LEVEL: 'debug',
  });
});
afterAll(async () => {
  await disposeKilnProcess(kiln, prefix, dirs?.dataDir);
});

type Line = Record<string, unknown>;
const lines = (): Line[] =>
  (kiln as KilnProcess)
    .log()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Line);

async function lineLike(match: (l: Line) => boolean): Promise<Line> {
  for (let i = 0; i < 50; i++) {
    const found = lines().find(match);
    if (found) return found;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no such log line; the log:\n${(kiln as KilnProcess).log().slice(-4000)}`);
}

describe('log lines name the tenant and key id, never the key', () => {
  it('on REST, the Lambda API, MCP and the terminal WebSocket, and for a queued job', async () => {
    const url = (kiln as KilnProcess).url;
    const auth = { authorization: `Bearer ${KEY}` };

    expect((await fetch(`${url}/api/v1/sessions/s-nosuch`, { headers: auth })).status).toBe(404);
    expect(await lineLike((l) => l.msg === 'request' && l.path === '/api/v1/sessions/s-nosuch')).toMatchObject({ level: 'info', method: 'GET', status: 404, tenant: 'acme', keyId: KEY_ID });

    const failing = await fetch(`${url}/api/v1/executions`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ language: 'nodejs', code: 'exports.handler = async () => { throw new TypeError("bad input") }' }),
    });
    const record = (await failing.json()) as { id: string; status: string };
    expect(record.status).toBe('failed');
    expect(await lineLike((l) => l.msg === 'request' && l.path === '/api/v1/executions')).toMatchObject({ status: failing.status, tenant: 'acme', keyId: KEY_ID });
    // The worker's lines for the job: its tenant (the key that queued it is not the worker's).
    expect(await lineLike((l) => l.msg === 'job finished' && l.id === record.id)).toMatchObject({ tenant: 'acme', status: 'failed', errorType: 'TypeError' });

    const lambda = new LambdaClient({ endpoint: url, region: 'us-east-1', credentials: { accessKeyId: KEY_ID, secretAccessKey: KEY }, maxAttempts: 1 });
    try {
      await expect(lambda.send(new GetFunctionCommand({ FunctionName: 'nosuch' }))).rejects.toBeInstanceOf(ResourceNotFoundException);
    } finally {
      lambda.destroy();
    }
    expect(await lineLike((l) => l.msg === 'request' && l.path === '/2015-03-31/functions/nosuch')).toMatchObject({ status: 404, tenant: 'acme', keyId: KEY_ID });

    const mcp = await fetch(`${url}/mcp/full`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{"jsonrpc":"2.0","id":1,"method":"tools/list"' });
    expect(mcp.status).toBeGreaterThanOrEqual(400);
    expect(await lineLike((l) => l.msg === 'request' && l.path === '/mcp/full')).toMatchObject({ status: mcp.status, tenant: 'acme', keyId: KEY_ID });

    // The terminal WebSocket, with the key in a header: its refusal names the tenant.
    const upgrade = (path: string, headers: Record<string, string>): Promise<number> => {
      const ws = new WebSocket(`${url.replace('http', 'ws')}${path}`, { headers });
      return new Promise<number>((resolve, reject) => {
        ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.once('open', () => reject(new Error('opened a terminal on a session that does not exist')));
        ws.once('error', reject);
      });
    };
    expect(await upgrade('/api/v1/sessions/s-nosuch/pty', auth)).toBe(404);
    expect(await lineLike((l) => l.msg === 'terminal refused')).toMatchObject({ sessionId: 's-nosuch', status: 404, tenant: 'acme', keyId: KEY_ID });
    // A key put in the URL anyway is refused, and must not reach the log either.
    expect(await upgrade(`/api/v1/sessions/s-nosuch/pty?api_key=${KEY}`, {})).toBe(400);

    expect((kiln as KilnProcess).log()).not.toContain(KEY);
  });
});
