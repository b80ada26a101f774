/**
 * MCP sessions live in the control plane's memory until they idle out (30 min), and many clients
 * never DELETE theirs: one tenant looping on `initialize` must not grow the process until it
 * dies, nor take room from another tenant. At its cap (KILN_MCP_MAX_SESSIONS_PER_TENANT) a new
 * session closes the tenant's least recently used one, whose client is told 404 and initializes
 * again, as MCP clients do; another tenant's sessions are untouched.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

const ALPHA = 'mcpcap-alpha-key-0123456789abcdef00';
const BETA = 'mcpcap-beta-key-0123456789abcdef000';
const ADMIN = 'mcpcap-admin-key-0123456789abcdef00';
const CAP = 3;

let k: TestKiln;
const clients: Client[] = [];

beforeAll(async () => {
  k = await startTestKiln({
    templates: { nodejs: { pool: { minIdle: 0 } }, python: null, shell: null, provided: null },
    env: { KILN_API_KEYS: `alpha:${ALPHA},beta:${BETA}`, KILN_ADMIN_API_KEYS: ADMIN, KILN_MCP_MAX_SESSIONS_PER_TENANT: String(CAP) },
  });
  expect((await k.call('POST', '/api/v1/admin/tenants', { id: 'beta' }, { authorization: `Bearer ${ADMIN}` })).status).toBe(201);
}, 120_000);
afterAll(async () => {
  for (const c of clients) await c.close().catch(() => undefined);
  await k?.stop();
});

async function connect(key: string): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(`${k.url}/mcp/executor`), { requestInit: { headers: { authorization: `Bearer ${key}` } } });
  const client = new Client({ name: 'mcp-cap-test', version: '1.0.0' });
  await client.connect(transport);
  clients.push(client);
  return client;
}
const works = async (c: Client): Promise<boolean> =>
  c.listTools().then(
    (r) => r.tools.length > 0,
    () => false,
  );

it('closes a tenant\'s least recently used MCP session past its cap, and leaves another tenant\'s alone', async () => {
  const betas = [await connect(BETA), await connect(BETA)];
  const alphas: Client[] = [];
  for (let i = 0; i < CAP; i++) alphas.push(await connect(ALPHA));
  // Use the first one again: the second is now alpha's least recently used.
  expect(await works(alphas[0]!)).toBe(true);
  const newest = await connect(ALPHA);
  expect(await works(newest)).toBe(true);
  expect(await works(alphas[1]!)).toBe(false);
  expect(await works(alphas[0]!)).toBe(true);
  expect(await works(alphas[2]!)).toBe(true);
  for (const b of betas) expect(await works(b)).toBe(true);

  // A loop of initializes keeps the tenant at its cap, never above; the newest always works.
  let last = newest;
  for (let i = 0; i < 10; i++) last = await connect(ALPHA);
  expect(await works(last)).toBe(true);
  const alive = await Promise.all(clients.map(async (c) => ((await works(c)) ? c : undefined)));
  const aliveAlpha = alive.filter((c) => c && !betas.includes(c));
  expect(aliveAlpha).toHaveLength(CAP);
  for (const b of betas) expect(await works(b)).toBe(true);
}, 120_000);
