import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { KilnError } from '../errors.js';

/**
 * A session's access token: the credential of the E2B in-sandbox surface (E2B's
 * `envdAccessToken`, sent as `X-Access-Token`), which carries no API key. 256 random bits,
 * made with the session and shown only to its tenant (E2B create and connect).
 */
export function newAccessToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Constant-time comparison (of SHA-256 digests, so lengths never leak either). */
export function accessTokenMatches(expected: string | undefined, presented: string | undefined): boolean {
  if (!expected || !presented) return false;
  const digest = (s: string): Buffer => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(expected), digest(presented));
}

/**
 * No running session with that id takes that token. One answer for an unknown session and a
 * wrong token, so a caller without the token cannot tell another tenant's sessions exist.
 */
export class SessionAccessDeniedError extends KilnError {
  constructor(sessionId: string) {
    super('SessionAccessDenied', 401, `no running sandbox "${sessionId.slice(0, 100)}" takes this access token; send the envdAccessToken that create or connect returned as X-Access-Token`, { sessionId: sessionId.slice(0, 100) });
  }
}
