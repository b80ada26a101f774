import { expect } from 'vitest';
import type { TestKiln } from './kiln.js';

/** NFSv3 and MOUNTv3 status codes the NFS tests expect (RFC 1813). */
export const NFS3 = { OK: 0, ACCES: 13, ROFS: 30, STALE: 70 } as const;
export const MNT3 = { OK: 0, NOENT: 2, ACCES: 13 } as const;

/** A session as the REST API returns it, with its NFS export. */
export interface NfsSession {
  id: string;
  nfsUrl: string;
  nfs: { host: string; port: number; exportPath: string; readOnly: boolean; allow: string[]; url: string; mountCommand: string };
}

/** Creates a session, runs `fn`, and deletes the session whatever happens. */
export async function withSession<T>(k: TestKiln, fn: (s: NfsSession) => Promise<T>, body: Record<string, unknown> = {}): Promise<T> {
  const res = await k.call('POST', '/api/v1/sessions', { template: 'nodejs', ...body });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  const s = res.body as NfsSession;
  try {
    return await fn(s);
  } finally {
    await k.call('DELETE', `/api/v1/sessions/${s.id}`);
  }
}

/** Runs a shell script in the session's sandbox through the REST API. */
export async function sessionSh(k: TestKiln, s: NfsSession, script: string): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const res = await k.call('POST', `/api/v1/sessions/${s.id}/process/run`, { command: 'sh', args: ['-c', script], timeoutMs: 120_000 });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body as { exitCode: number; stdout: string; stderr: string };
}

/** libnfs URL of `path` below export `/<exportId>` on `port` ("" is the export root). */
export function libnfsUrl(port: number, exportId: string, path = ''): string {
  return `nfs://127.0.0.1/${exportId}${path}?nfsport=${port}&mountport=${port}&version=3`;
}
