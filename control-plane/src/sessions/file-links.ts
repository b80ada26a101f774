import { createHmac, timingSafeEqual } from 'node:crypto';
import { KilnError } from '../errors.js';
import { principal, type Principal } from '../tenancy/principal.js';

export const FILE_LINK_PREFIX = '/api/v1/file-links/';
/** Bounds of a link's life: long enough to start a large transfer, short enough to leak little. */
export const FILE_LINK_MIN_SECONDS = 1;
export const FILE_LINK_MAX_SECONDS = 3600;
export const FILE_LINK_DEFAULT_SECONDS = 300;

export type FileLinkMethod = 'GET' | 'PUT';

/** What a link grants: one method on one path of one session of one tenant, until `expiresAtMs`. */
export interface FileLinkClaims {
  tenant: string;
  sessionId: string;
  path: string;
  method: FileLinkMethod;
  expiresAtMs: number;
}

export class FileLinkRefusedError extends KilnError {
  constructor(why: string) {
    super('FileLinkRefused', 403, `this file link cannot be used: ${why}; ask POST /api/v1/sessions/{id}/files/url for a new one`);
  }
}

/**
 * Signed file URLs: a link that moves one file in or out of a session without an API key, for a
 * browser or another service. The token carries its claims (tenant, session, path, method and
 * expiry) and an HMAC-SHA256 of them under a key derived from the deployment's secret
 * (`Sealer.derive('file-links')`, the same on every replica), compared in constant time, so no
 * claim can be changed or a link made without the secret. Nothing is stored: a link ends when it
 * expires, when its session is deleted (the session is looked up as its tenant on every use), or
 * for all links at once when the secret is rotated.
 */
export class FileLinks {
  constructor(private readonly key: Buffer) {}

  private sign(payload: string): Buffer {
    return createHmac('sha256', this.key).update(payload).digest();
  }

  /** A token for `claims` (path and prefix are the caller's to join). */
  token(claims: FileLinkClaims): string {
    const payload = Buffer.from(JSON.stringify({ t: claims.tenant, s: claims.sessionId, p: claims.path, m: claims.method, e: claims.expiresAtMs })).toString('base64url');
    return `${payload}.${this.sign(payload).toString('base64url')}`;
  }

  /**
   * The claims of a token used with `method`: FileLinkRefused when it is not ours, has expired
   * or is used with another method. Checked in that order, so nothing about a forged token's
   * claims is believed.
   */
  verify(token: string, method: string, now = Date.now()): FileLinkClaims {
    const [payload = '', signature = '', extra] = token.split('.');
    if (extra !== undefined || !payload || !signature) throw new FileLinkRefusedError('it is malformed');
    const given = Buffer.from(signature, 'base64url');
    const expected = this.sign(payload);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new FileLinkRefusedError('its signature does not match');
    const c = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { t: string; s: string; p: string; m: FileLinkMethod; e: number };
    if (!(c.e > now)) throw new FileLinkRefusedError('it has expired');
    // HEAD is a GET without the body.
    const used = method === 'HEAD' ? 'GET' : method;
    if (used !== c.m) throw new FileLinkRefusedError(`it was made for ${c.m}, not ${method}`);
    return { tenant: c.t, sessionId: c.s, path: c.p, method: c.m, expiresAtMs: c.e };
  }

  /** Who a link acts as: its tenant, with no more than the sessions scope, named for the logs. */
  static principalOf(claims: FileLinkClaims): Principal {
    return principal(claims.tenant, 'file-link', ['sessions']);
  }
}
