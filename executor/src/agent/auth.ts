import { timingSafeEqual } from 'node:crypto';
import type { Metadata } from '@grpc/grpc-js';

/** True when the call carries `authorization: Bearer <token>` (constant-time compare). */
export function isAuthorized(metadata: Metadata, token: string): boolean {
  if (!token) return true;
  const header = metadata.get('authorization')[0];
  if (typeof header !== 'string') return false;
  const given = Buffer.from(header);
  const expected = Buffer.from(`Bearer ${token}`);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
