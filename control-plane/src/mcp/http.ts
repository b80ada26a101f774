import type { AppEnv } from '../api/router.js';
import type { Principal } from '../tenancy/principal.js';
import { randomUUID } from 'node:crypto';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { Hono, type Context } from 'hono';
import type { Redis } from 'ioredis';
import { errorBody } from '../api/errors.js';
import { jsonTooDeep, MAX_JSON_DEPTH } from '../api/json-depth.js';
import { redisOutage } from '../api/redis-guard.js';
import { log } from '../log.js';
import type { McpServices } from './context.js';
import { isProfile, PROFILE_NAMES, type ProfileName } from './profiles.js';
import { buildMcpServer, type KilnMcpServer } from './server.js';

/** MCP sessions unused this long are closed (their implicit sandbox deleted with them). */
const SESSION_IDLE_MS = 30 * 60_000;
const SWEEP_EVERY_MS = 60_000;
/** Open MCP sessions one tenant may hold on one replica (KILN_MCP_MAX_SESSIONS_PER_TENANT). */
const DEFAULT_MAX_SESSIONS_PER_TENANT = 64;

interface Connection {
  profile: ProfileName;
  /** The key that opened it: only requests with the same key may use it. */
  principal: Principal;
  transport: WebStandardStreamableHTTPServerTransport;
  mcp: KilnMcpServer;
  lastUsedAt: number;
}

/** The MCP endpoints and a way to close every open MCP session when Kiln stops. */
export interface McpEndpoint {
  routes: Hono<AppEnv>;
  close(): Promise<void>;
}

const rpcError = (c: Context, status: 400 | 404 | 405 | 413, code: number, message: string) => c.json({ jsonrpc: '2.0', error: { code, message }, id: null }, status);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * JSON-RPC error code of "unavailable, retry" (the implementation-defined server error range):
 * a tool call that needs Redis while it is down. `data` says the same as REST's 503 body.
 */
export const MCP_UNAVAILABLE = -32000;

/**
 * The JSON-RPC error response to every tool call in `body` while Redis is down; undefined when it
 * is up or the body calls no tool. Answered before the MCP SDK sees the request, because the SDK
 * turns whatever a tool throws into a tool result, and an outage is not the tool's result:
 * clients get an McpError they can retry, as REST clients get a 503.
 */
function unavailable(redis: Redis | undefined, body: unknown): unknown[] | undefined {
  const outage = redis ? redisOutage(redis) : undefined;
  if (!outage) return undefined;
  const calls = (Array.isArray(body) ? body : [body]).filter((m): m is Record<string, unknown> => isObject(m) && m.method === 'tools/call' && m.id !== undefined);
  if (!calls.length) return undefined;
  return calls.map((m) => ({ jsonrpc: '2.0', id: m.id, error: { code: MCP_UNAVAILABLE, message: `ServiceUnavailable: ${outage.message}`, data: { code: outage.code, retryAfterSeconds: 1 } } }));
}

/**
 * What is wrong with the shape of a JSON-RPC message (or batch) before the MCP SDK sees it: the
 * SDK answers a request whose params fail its schema with -32603 InternalError, which tells a
 * client that Kiln broke. MCP's params, and a tool call's arguments, are always objects.
 */
function invalidParams(body: unknown): string | undefined {
  for (const msg of Array.isArray(body) ? body : [body]) {
    if (!isObject(msg) || typeof msg.method !== 'string' || msg.params === undefined) continue;
    if (!isObject(msg.params)) return `Invalid params: "${msg.method.slice(0, 80)}" takes an object as params`;
    if (msg.method === 'tools/call' && msg.params.arguments !== undefined && !isObject(msg.params.arguments)) return 'Invalid params: a tool\'s arguments must be an object';
  }
  return undefined;
}

/**
 * Streamable HTTP at /mcp/{profile}, both ways the SDK documents:
 * - session-based: an `initialize` without `mcp-session-id` opens a connection whose transport
 *   is kept here by the id it hands out; later requests carry the id (unknown ids get 404);
 * - stateless: any other request without an id is served by a fresh server and transport that
 *   live for that one request.
 * Sessions live in this replica's memory, so a load balancer must keep a client on one replica.
 */
export function mcpEndpoint(services: McpServices, opts: { maxBodyBytes: number; redis?: Redis; maxSessionsPerTenant?: number }): McpEndpoint {
  const maxPerTenant = opts.maxSessionsPerTenant ?? DEFAULT_MAX_SESSIONS_PER_TENANT;
  const connections = new Map<string, Connection>();
  const closeConnection = async (id: string, why: string): Promise<void> => {
    const conn = connections.get(id);
    if (!conn) return;
    connections.delete(id);
    log('debug', 'mcp session closed', { mcpSessionId: id, why });
    await conn.transport.close();
    await conn.mcp.dispose();
  };
  const sweeper = setInterval(() => {
    const now = Date.now();
    for (const [id, conn] of connections) {
      if (now - conn.lastUsedAt > SESSION_IDLE_MS) closeConnection(id, 'idle').catch((err: unknown) => log('warn', 'could not close an idle mcp session', { mcpSessionId: id, error: String(err) }));
    }
  }, SWEEP_EVERY_MS);
  sweeper.unref();

  const routes = new Hono<AppEnv>();
  routes.all('/mcp/:profile', async (c) => {
    const profile = c.req.param('profile');
    if (!isProfile(profile)) return c.json(errorBody('ProfileNotFound', `MCP profile "${profile}" does not exist; use one of ${PROFILE_NAMES.map((p) => `/mcp/${p}`).join(', ')}`), 404);
    const sessionId = c.req.header('mcp-session-id');
    if (sessionId) {
      const conn = connections.get(sessionId);
      // An MCP session is its key's: another key (of any tenant) is told it does not exist.
      if (!conn || conn.profile !== profile || conn.principal.keyId !== c.get('principal').keyId || conn.principal.tenant !== c.get('principal').tenant) return rpcError(c, 404, -32001, `MCP session "${sessionId.slice(0, 80)}" does not exist on /mcp/${profile} (it expired, was closed, or belongs to another profile or replica); start a new one with initialize`);
      conn.lastUsedAt = Date.now();
      let parsedBody: unknown;
      if (c.req.method === 'POST') {
        const read = await readBody(c);
        if (read instanceof Response) return read;
        parsedBody = read.body;
        const down = unavailable(opts.redis, parsedBody);
        if (down) return c.json(Array.isArray(parsedBody) ? down : down[0]);
      }
      const res = await conn.transport.handleRequest(c.req.raw, parsedBody === undefined ? undefined : { parsedBody });
      // A DELETE ends the session in the transport; drop it and its sandbox here too.
      if (c.req.method === 'DELETE' && res.ok) await closeConnection(sessionId, 'deleted by client');
      return res;
    }
    if (c.req.method !== 'POST') return rpcError(c, 405, -32000, `${c.req.method} needs an mcp-session-id header; without one only POST (stateless JSON-RPC) is served`);
    const read = await readBody(c);
    if (read instanceof Response) return read;
    const body = read.body;
    const down = unavailable(opts.redis, body);
    if (down) return c.json(Array.isArray(body) ? down : down[0]);
    const initialize = Array.isArray(body) ? body.some(isInitializeRequest) : isInitializeRequest(body);
    return initialize ? openSession(c.req.raw, body, profile, c.get('principal')) : stateless(c.req.raw, body, profile, c.get('principal'));
  });

  /** A POST's JSON-RPC body, or the error response for one too large, not JSON, or of the wrong shape. */
  async function readBody(c: Context): Promise<{ body: unknown } | Response> {
    const length = Number(c.req.header('content-length') ?? 0);
    if (length > opts.maxBodyBytes) return rpcError(c, 413, -32600, `request body is larger than ${opts.maxBodyBytes} bytes`);
    const text = await c.req.text();
    if (Buffer.byteLength(text) > opts.maxBodyBytes) return rpcError(c, 413, -32600, `request body is larger than ${opts.maxBodyBytes} bytes`);
    // Tool arguments (events among them) are serialised again on the way to a sandbox.
    if (jsonTooDeep(text)) return rpcError(c, 400, -32600, `Invalid Request: the body is nested more than ${MAX_JSON_DEPTH} levels deep`);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return rpcError(c, 400, -32700, 'Parse error: the body is not JSON; send a JSON-RPC 2.0 message');
    }
    const problem = invalidParams(body);
    return problem ? rpcError(c, 400, -32602, problem) : { body };
  }

  /**
   * Makes room for one more MCP session of `tenant`: at the cap, its least recently used one is
   * closed (its client gets 404 on its next request, which MCP clients answer by initializing
   * again). Sessions live in memory until they idle out, and many clients never DELETE theirs:
   * without a cap one tenant's initialize loop would grow this process until it died; with 429
   * instead, an agent that leaked its sessions would be locked out for half an hour.
   */
  async function makeRoom(tenant: string): Promise<void> {
    const own = [...connections].filter(([, c]) => c.principal.tenant === tenant).sort(([, a], [, b]) => a.lastUsedAt - b.lastUsedAt);
    for (const [id] of own.slice(0, Math.max(0, own.length - maxPerTenant + 1))) {
      log('info', 'mcp session closed to make room for a new one of its tenant', { mcpSessionId: id, tenant, limit: maxPerTenant });
      await closeConnection(id, 'tenant at its MCP session limit').catch((err: unknown) => log('warn', 'could not close an mcp session', { mcpSessionId: id, error: String(err) }));
    }
  }

  async function openSession(req: Request, body: unknown, profile: ProfileName, principal: Principal): Promise<Response> {
    await makeRoom(principal.tenant);
    const id = randomUUID();
    const mcp = buildMcpServer(profile, services, principal, { mcpSessionId: id });
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => id,
      enableJsonResponse: true,
      onsessioninitialized: (sid) => {
        connections.set(sid, { profile, principal, transport, mcp, lastUsedAt: Date.now() });
      },
    });
    await mcp.server.connect(transport);
    return transport.handleRequest(req, { parsedBody: body });
  }

  async function stateless(req: Request, body: unknown, profile: ProfileName, principal: Principal): Promise<Response> {
    const mcp = buildMcpServer(profile, services, principal);
    const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    await mcp.server.connect(transport);
    try {
      // In JSON mode the response is complete once this resolves, so the pair can go.
      return await transport.handleRequest(req, { parsedBody: body });
    } finally {
      await mcp.server.close();
    }
  }

  return {
    routes,
    async close() {
      clearInterval(sweeper);
      await Promise.all([...connections.keys()].map((id) => closeConnection(id, 'kiln stopping')));
    },
  };
}
