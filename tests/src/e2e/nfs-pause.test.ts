/**
 * NFS access to a paused session through the control plane's gateway (KILN_NFS_PORT):
 * autoResume wakes it (thawed, or restored from hibernation) before the call is forwarded;
 * with autoResume false the client gets an NFS error at once (ACCES), never a wait; a MOUNT
 * that knows the session id but not the export's secret does not wake it. libnfs tools plus
 * the NFS module's raw client.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Nfs3TestClient, RawRpcClient } from '../../../executor/dist/nfs/test-client.js';
import { run as runCommand } from '../../../executor/dist/nfs/test-support.js';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { libnfsUrl, MNT3, NFS3, sessionSh, withSession as withNfsSession, type NfsSession } from '../support/nfs.js';

let k: TestKiln;
let gw: number;
beforeAll(async () => {
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 2 } }, python: null, shell: null, provided: null }, env: { KILN_NFS_PORT: '0' } });
  gw = k.kiln.nfsPort as number;
});
afterAll(async () => {
  await k?.stop();
});

const withSession = <T>(fn: (s: NfsSession) => Promise<T>, body?: Record<string, unknown>): Promise<T> => withNfsSession(k, fn, { timeoutMs: 300_000, ...body });
const url = (s: NfsSession, path = ''): string => libnfsUrl(gw, s.nfs.exportPath.slice(1), path);
/** libnfs tools, killed after 2 minutes (a hang shows as a null exit code). */
const run = (cmd: string, args: string[]) => runCommand(cmd, args, 120_000);
const gateway = async (): Promise<Nfs3TestClient> => new Nfs3TestClient(await RawRpcClient.connect(gw));
const state = async (s: NfsSession): Promise<{ status: string; resumeType?: string }> => (await k.call('GET', `/api/v1/sessions/${s.id}`)).body as { status: string };
/** Past the gateway's 2 s route cache, so the next call looks the session up again. */
const pastRouteCache = (): Promise<void> => new Promise((r) => setTimeout(r, 2100));

async function pause(s: NfsSession, how: 'pause' | 'hibernate' = 'pause'): Promise<void> {
  const res = await k.call('POST', `/api/v1/sessions/${s.id}/${how}`);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  await pastRouteCache();
}

describe('NFS access to a paused session (gateway)', () => {
  it('resumes a paused session (thawed) before reading and writing its /workspace', { timeout: 180_000 }, async () => {
    await withSession(async (s) => {
      await sessionSh(k, s, 'echo before > a.txt');
      await pause(s);
      expect((await state(s)).status).toBe('paused');
      const cat = await run('nfs-cat', [url(s, '/a.txt')]);
      expect({ code: cat.code, stdout: cat.stdout }, cat.stderr).toEqual({ code: 0, stdout: 'before\n' });
      expect(await state(s)).toMatchObject({ status: 'running' });
      const usage = await k.call('GET', `/api/v1/sessions/${s.id}/usage`);
      expect(usage.body).toMatchObject({ paused: false });
      // A handle taken before a pause wakes it too (routed by its tag).
      const c = await gateway();
      try {
        const root = await c.mount(s.nfs.exportPath);
        expect(root.status).toBe(MNT3.OK);
        await pause(s);
        expect((await c.lookup(root.fh as Buffer, 'a.txt')).status).toBe(NFS3.OK);
        expect((await state(s)).status).toBe('running');
      } finally {
        c.rpc.close();
      }
    });
  });

  it('restores a hibernated session before serving it, files intact', { timeout: 180_000 }, async () => {
    await withSession(async (s) => {
      await sessionSh(k, s, 'echo kept > kept.txt');
      await pause(s, 'hibernate');
      expect((await k.call('GET', `/api/v1/sessions/${s.id}/usage`)).body).toMatchObject({ hibernated: true });
      const cat = await run('nfs-cat', [url(s, '/kept.txt')]);
      expect({ code: cat.code, stdout: cat.stdout }, cat.stderr).toEqual({ code: 0, stdout: 'kept\n' });
      // Restored into a new sandbox under the same export name: the client's URL stays valid.
      expect(await state(s)).toMatchObject({ status: 'running', nfsUrl: s.nfsUrl });
    });
  });

  it('answers ACCES at once for a paused session made with autoResume false, and leaves it paused', { timeout: 180_000 }, async () => {
    await withSession(
      async (s) => {
        await sessionSh(k, s, 'echo x > a.txt');
        const c = await gateway();
        try {
          const root = await c.mount(s.nfs.exportPath);
          expect(root.status).toBe(MNT3.OK);
          await pause(s);
          expect((await c.mount(s.nfs.exportPath)).status).toBe(MNT3.ACCES);
          expect((await c.lookup(root.fh as Buffer, 'a.txt')).status).toBe(NFS3.ACCES);
        } finally {
          c.rpc.close();
        }
        const cat = await run('nfs-cat', [url(s, '/a.txt')]);
        expect(cat.code, 'nfs-cat must fail, not hang').not.toBeNull();
        expect(cat.code).not.toBe(0);
        expect((await state(s)).status).toBe('paused');
        // Resumed through the API, it is served again.
        expect((await k.call('POST', `/api/v1/sessions/${s.id}/resume`)).status).toBe(200);
        expect((await run('nfs-cat', [url(s, '/a.txt')])).stdout).toBe('x\n');
      },
      { autoResume: false },
    );
  });

  it('does not wake a paused session for a MOUNT with the session id but a wrong secret', { timeout: 120_000 }, async () => {
    await withSession(async (s) => {
      await pause(s);
      const c = await gateway();
      try {
        const forged = `/${s.id}-${'0'.repeat(32)}`;
        expect(forged).not.toBe(s.nfs.exportPath);
        expect((await c.mount(forged)).status).toBe(MNT3.NOENT);
        expect((await c.mount(`/${s.id}`)).status).toBe(MNT3.NOENT);
      } finally {
        c.rpc.close();
      }
      expect((await state(s)).status).toBe('paused');
    });
  });
});
