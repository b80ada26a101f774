import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

/**
 * MCP as another tenant, with the official client: tools see and reach only the caller's
 * sandboxes (alpha's are as missing as an unknown id), and every tool checks its scope, so a
 * read-only key cannot make a sandbox or run code through MCP either.
 */
const ALPHA = 'mcp-alpha-key-0123456789abcdef';
const BETA = 'mcp-beta-key-0123456789abcdef0';
const ADMIN = 'mcp-admin-key-0123456789abcdef';

let k: TestKiln;
let session = '';
beforeAll(async () => {
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 0 } }, python: null, shell: null, provided: null }, env: { KILN_API_KEYS: `alpha:${ALPHA},beta:${BETA}`, KILN_ADMIN_API_KEYS: ADMIN } });
  const s = await k.call('POST', '/api/v1/sessions', { template: 'nodejs', timeoutMs: 120_000 }, { authorization: `Bearer ${ALPHA}` });
  expect(s.status).toBe(201);
  session = s.body.id as string;
  expect((await fetch(`${k.url}/api/v1/sessions/${session}/files?path=secret.txt`, { method: 'PUT', headers: { authorization: `Bearer ${ALPHA}`, 'content-type': 'application/octet-stream' }, body: 'alpha secret' })).status).toBe(200);
});
afterAll(async () => {
  await k?.stop();
});

async function withClient<T>(key: string, profile: string, fn: (c: Client) => Promise<T>): Promise<T> {
  const transport = new StreamableHTTPClientTransport(new URL(`${k.url}/mcp/${profile}`), { requestInit: { headers: { authorization: `Bearer ${key}` } } });
  const client = new Client({ name: 'tenancy-test', version: '1.0.0' });
  await client.connect(transport);
  try {
    return await fn(client);
  } finally {
    await transport.terminateSession().catch(() => undefined);
    await client.close();
  }
}

const call = (c: Client, name: string, args: Record<string, unknown>) =>
  c.callTool({ name, arguments: args }) as Promise<{ isError?: boolean; structuredContent?: { error?: { code: string } }; content: Array<{ text?: string }> }>;

describe('MCP tools, as another tenant', () => {
  it('reach none of alpha\'s sandboxes: each is SessionNotFound, the list is beta\'s own, and alpha\'s files stay', async () => {
    await withClient(BETA, 'full', async (c) => {
      const tools = (await c.listTools()).tools.map((t) => t.name);
      const attempts: Array<[string, Record<string, unknown>]> = [
        ['sandbox_get', { sandbox_id: session }],
        ['file_read', { sandbox_id: session, path: 'secret.txt' }],
        ['file_write', { sandbox_id: session, path: 'secret.txt', content: 'pwned' }],
        ['file_list', { sandbox_id: session, path: '.' }],
        ['file_remove', { sandbox_id: session, path: 'secret.txt' }],
        ['process_run', { sandbox_id: session, command: 'cat /workspace/secret.txt' }],
        ['sandbox_delete', { sandbox_id: session }],
      ];
      for (const [name, args] of attempts.filter(([n]) => tools.includes(n))) {
        const r = await call(c, name, args);
        expect([name, r.isError, r.structuredContent?.error?.code]).toEqual([name, true, 'SessionNotFound']);
        expect(JSON.stringify(r)).not.toContain('alpha secret');
      }
      if (tools.includes('sandbox_list')) expect(JSON.stringify(await call(c, 'sandbox_list', {}))).not.toContain(session);
    });
    const file = await fetch(`${k.url}/api/v1/sessions/${session}/files?path=secret.txt`, { headers: { authorization: `Bearer ${ALPHA}` } });
    expect(await file.text()).toBe('alpha secret');
  });

  it('check each tool\'s scope: a read-only key lists but cannot make a sandbox, touch files or run code', async () => {
    const admin = { authorization: `Bearer ${ADMIN}` };
    expect((await k.call('POST', '/api/v1/admin/tenants', { id: 'viewer' }, admin)).status).toBe(201);
    const reader = (await k.call('POST', '/api/v1/admin/tenants/viewer/keys', { scopes: ['read'] }, admin)).body.key as string;
    await withClient(reader, 'full', async (c) => {
      const tools = (await c.listTools()).tools.map((t) => t.name);
      expect(tools).toContain('sandbox_create');
      for (const [name, args] of [
        ['sandbox_create', {}],
        ['process_run', { command: 'id' }],
        ['file_write', { path: 'x', content: 'y' }],
        ['code_run', { code: 'print(1)', language: 'python' }],
      ] as Array<[string, Record<string, unknown>]>) {
        if (!tools.includes(name)) continue;
        const r = await call(c, name, args);
        expect([name, r.isError, r.structuredContent?.error?.code]).toEqual([name, true, 'Forbidden']);
      }
      if (tools.includes('sandbox_list')) expect((await call(c, 'sandbox_list', {})).isError).toBeFalsy();
    });
    // Nothing was made for the read-only key.
    expect((await k.call('GET', '/api/v1/sessions', undefined, admin)).body.sessions.filter((s: { tenant: string }) => s.tenant === 'viewer')).toEqual([]);
  });

  it('keeps an MCP session to the key that opened it', async () => {
    const transport = new StreamableHTTPClientTransport(new URL(`${k.url}/mcp/developer`), { requestInit: { headers: { authorization: `Bearer ${ALPHA}` } } });
    const client = new Client({ name: 'tenancy-test', version: '1.0.0' });
    await client.connect(transport);
    try {
      const sid = transport.sessionId as string;
      const stolen = await fetch(`${k.url}/mcp/developer`, {
        method: 'POST',
        headers: { authorization: `Bearer ${BETA}`, 'mcp-session-id': sid, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/list' }),
      });
      expect(stolen.status).toBe(404);
    } finally {
      await transport.terminateSession().catch(() => undefined);
      await client.close();
    }
  });
});
