import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { KilnError } from '../../errors.js';
import { log, withLogContext } from '../../log.js';
import type { SessionService } from '../../sessions/service.js';
import { errorBody } from '../errors.js';
import { principalOf } from '../auth.js';
import { scopeOf } from '../scopes.js';
import type { Keyring } from '../../tenancy/keyring.js';
import { hasScope } from '../../tenancy/principal.js';
import { browserPolicy, browserProblem, type BrowserPolicy } from '../origin.js';
import { PTY_PROTOCOL, TICKET_PROTOCOL_PREFIX, ticketOf, type PtyTickets } from '../../sessions/pty-tickets.js';
import type { Principal } from '../../tenancy/principal.js';

function headerOf(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

const PTY_PATH = /^\/api\/v1\/sessions\/([^/]+)\/pty$/;
/** Terminal input counts as session activity, recorded at most this often. */
const TOUCH_EVERY_MS = 1000;

function refuse(socket: Duplex, status: number, code: string, message: string): void {
  const body = JSON.stringify(errorBody(code, message));
  socket.end(`HTTP/1.1 ${status} ${status === 404 ? 'Not Found' : status === 400 ? 'Bad Request' : status === 401 ? 'Unauthorized' : 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

function size(value: string | null, fallback: number): number {
  const n = value === null ? fallback : Number(value);
  return Number.isInteger(n) && n >= 1 && n <= 1000 ? n : NaN;
}

/**
 * `GET /api/v1/sessions/{id}/pty?cols=&rows=` upgraded to a WebSocket and bridged to the
 * executor's Pty stream. Binary frames carry terminal bytes both ways; text frames carry JSON
 * control messages: `{"type":"resize","cols":N,"rows":N}` from the client and
 * `{"type":"exit","code":N}` from the server, sent before it closes. Other upgrade paths are
 * left to whoever else listens for upgrades.
 */
export function attachSessionPty(server: Server, sessions: SessionService, keyring: Keyring, browser: BrowserPolicy = browserPolicy('127.0.0.1', [], []), tickets?: PtyTickets): { close(): void } {
  // A browser offers `kiln.pty` and `kiln.ticket.<ticket>`: the answer names only the first, so
  // the ticket is never echoed. Other clients keep ws's default (the first protocol offered).
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: 1024 * 1024,
    handleProtocols: (offered) => (offered.has(PTY_PROTOCOL) ? PTY_PROTOCOL : ([...offered].find((p) => !p.startsWith(TICKET_PROTOCOL_PREFIX)) ?? false)),
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const match = PTY_PATH.exec(url.pathname);
    if (!match) return;
    // Browsers send any page's WebSocket to any host without asking: Origin and Host decide.
    const problem = browserProblem((n) => headerOf(req, n), browser);
    if (problem) {
      refuse(socket, 403, problem.code, problem.message);
      return;
    }
    const id = decodeURIComponent(match[1] as string);
    const cols = size(url.searchParams.get('cols'), 80);
    const rows = size(url.searchParams.get('rows'), 24);
    const fail = (err: unknown): void => {
      if (err instanceof KilnError) {
        log('debug', 'terminal refused', { sessionId: id, status: err.status, code: err.code });
        refuse(socket, err.status, err.code, err.message);
      } else {
        log('error', 'pty upgrade failed', { sessionId: id, error: String(err) });
        refuse(socket, 500, 'InternalError', 'internal error; see the control plane log');
      }
    };
    // A key in the URL lands in access logs, proxies and browser history: refused outright (even
    // beside a good header), so a client that still sends one learns it at once. Not logged.
    if (url.searchParams.has('api_key')) {
      refuse(socket, 400, 'KeyInUrl', 'API keys are not accepted in URLs (they end up in logs and proxies): send "Authorization: Bearer <key>" on the upgrade, or, from a browser, a ticket from POST /api/v1/sessions/{id}/pty-ticket as the subprotocol kiln.ticket.<ticket>');
      return;
    }
    const header = (n: string): string | undefined => headerOf(req, n);
    // Browsers: a one-use ticket from POST /api/v1/sessions/{id}/pty-ticket, offered as a
    // subprotocol (pty-tickets.ts). A ticket offered is the only credential looked at.
    const ticket = ticketOf(headerOf(req, 'sec-websocket-protocol'));
    const who: Promise<{ principal?: Principal | undefined; ticket?: boolean }> =
      ticket === undefined ? principalOf(keyring, header) : (tickets?.redeem(ticket, id) ?? Promise.resolve(undefined)).then((p) => ({ principal: p, ticket: true }));
    who.then(({ principal, ticket: usedTicket }) => {
      if (!principal && usedTicket) return refuse(socket, 401, 'TicketInvalid', 'the terminal ticket is unknown, used, expired or for another session; ask POST /api/v1/sessions/{id}/pty-ticket for a new one');
      if (!principal) return refuse(socket, 401, 'Unauthorized', 'this endpoint needs an API key: send "Authorization: Bearer <key>" or "x-api-key: <key>", or a ticket as the subprotocol kiln.ticket.<ticket>');
      // From here on every line logged for this terminal (its bridge too) names the tenant and key id.
      return withLogContext({ tenant: principal.tenant, keyId: principal.keyId }, () => {
        // A terminal writes to the sandbox like any process: the sessions scope, as scopes.ts says.
        if (!hasScope(principal, scopeOf('GET', url.pathname))) return refuse(socket, 403, 'Forbidden', `this key (${principal.keyId}) does not have the "sessions" scope a terminal needs`);
        if (Number.isNaN(cols) || Number.isNaN(rows)) return refuse(socket, 400, 'InvalidRequest', 'cols and rows must be integers between 1 and 1000');
        return sessions
          .open(id, principal)
          .then(({ agent }) =>
            wss.handleUpgrade(req, socket, head, (ws) => {
              log('debug', 'terminal opened', { sessionId: id, cols, rows });
              bridge(ws, sessions, id, agent.pty(cols, rows, {}));
            }),
          )
          .catch(fail);
      });
    }).catch(fail);
  });
  return {
    /**
     * Closes every open terminal with 1012 (service restart): an upgraded socket would otherwise
     * keep the HTTP server's close waiting. Such a terminal lives only as long as its WebSocket
     * (the executor ends it with the stream), so a client opens a new one after a restart; a
     * terminal that must outlive connections is a background process with a pty (E2B pty, MCP).
     */
    close(): void {
      for (const ws of wss.clients) ws.close(1012, 'control plane stopping');
    },
  };
}

function bridge(ws: WebSocket, sessions: SessionService, id: string, pty: ReturnType<Awaited<ReturnType<SessionService['open']>>['agent']['pty']>): void {
  let lastTouch = Date.now();
  ws.on('message', (data: RawData, isBinary: boolean) => {
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    if (isBinary) pty.write({ data: bytes });
    else {
      let msg: { type?: unknown; cols?: unknown; rows?: unknown; data?: unknown };
      try {
        msg = JSON.parse(bytes.toString('utf8')) as typeof msg;
      } catch {
        ws.send(JSON.stringify({ type: 'error', code: 'InvalidRequest', message: 'text frames must be JSON control messages such as {"type":"resize","cols":80,"rows":24}' }));
        return;
      }
      if (msg.type === 'resize' && typeof msg.cols === 'number' && typeof msg.rows === 'number') pty.write({ cols: msg.cols, rows: msg.rows });
      else if (msg.type === 'input' && typeof msg.data === 'string') pty.write({ data: Buffer.from(msg.data) });
    }
    if (Date.now() - lastTouch > TOUCH_EVERY_MS) {
      lastTouch = Date.now();
      sessions.store.touch(id, lastTouch).catch((err: unknown) => log('debug', 'could not record terminal activity', { sessionId: id, error: String(err) }));
    }
  });
  ws.on('close', () => pty.end());
  ws.on('error', () => pty.end());
  void (async () => {
    try {
      for await (const out of pty.output) {
        if (out.data.length && ws.readyState === ws.OPEN) ws.send(out.data, { binary: true });
        if (out.exited) {
          ws.send(JSON.stringify({ type: 'exit', code: out.exitCode }));
          ws.close(1000, 'exited');
          return;
        }
      }
      ws.close(1000, 'closed');
    } catch (err) {
      const e = err instanceof KilnError ? { code: err.code, message: err.message } : { code: 'InternalError', message: String(err) };
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'error', ...e }));
      ws.close(1011, e.code);
    }
  })();
}
