import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Keys } from '../store/keys.js';
import { principal, SCOPES, type Principal, type Scope } from '../tenancy/principal.js';

/** How long a ticket may wait to be used: a browser opens its WebSocket right after asking. */
export const TICKET_TTL_MS = 30_000;
/** The WebSocket subprotocol the server picks; the ticket rides as a second one, `kiln.ticket.<ticket>`. */
export const PTY_PROTOCOL = 'kiln.pty';
export const TICKET_PROTOCOL_PREFIX = 'kiln.ticket.';
const TICKET = /^[A-Za-z0-9_-]{43}$/;

/**
 * One-use, short-lived tickets that open one session's terminal. A browser cannot set headers
 * on a WebSocket, and an API key in the URL would land in proxy logs and history; so the page
 * asks for a ticket with its key in a header (`POST /api/v1/sessions/{id}/pty-ticket`, which
 * checks ownership), then offers it as a subprotocol. Only the SHA-256 of a ticket is stored,
 * with the principal it stands for and the session it opens; GETDEL makes it single-use on
 * every replica at once. A ticket for another session, a used or an expired one is refused.
 */
export class PtyTickets {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  async issue(sessionId: string, who: Principal): Promise<{ ticket: string; expiresInMs: number }> {
    const ticket = randomBytes(32).toString('base64url');
    const value = JSON.stringify({ s: sessionId, t: who.tenant, k: who.keyId, sc: [...who.scopes] });
    await this.redis.set(this.keys.ptyTicket(hash(ticket)), value, 'PX', TICKET_TTL_MS);
    return { ticket, expiresInMs: TICKET_TTL_MS };
  }

  /** The principal a ticket stands for, once: undefined when unknown, used, expired or for another session. */
  async redeem(ticket: string, sessionId: string): Promise<Principal | undefined> {
    if (!TICKET.test(ticket)) return undefined;
    const raw = await this.redis.getdel(this.keys.ptyTicket(hash(ticket)));
    if (!raw) return undefined;
    const v = JSON.parse(raw) as { s: string; t: string; k: string; sc: string[] };
    if (v.s !== sessionId) return undefined;
    return principal(v.t, v.k, v.sc.filter((s): s is Scope => (SCOPES as readonly string[]).includes(s)));
  }
}

function hash(ticket: string): string {
  return createHash('sha256').update(ticket).digest('hex');
}

/** The ticket among a WebSocket's offered subprotocols (`Sec-WebSocket-Protocol`), if any. */
export function ticketOf(protocolHeader: string | undefined): string | undefined {
  for (const p of (protocolHeader ?? '').split(',')) {
    const t = p.trim();
    if (t.startsWith(TICKET_PROTOCOL_PREFIX)) return t.slice(TICKET_PROTOCOL_PREFIX.length);
  }
  return undefined;
}
