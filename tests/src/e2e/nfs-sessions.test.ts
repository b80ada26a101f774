/**
 * NFS export of session workspaces through the whole stack: a real control plane, executor
 * processes with their NFS servers, sessions over REST, and Debian's libnfs clients (nfs-cp,
 * nfs-cat, nfs-ls) plus a raw NFSv3 client for the procedures those tools never send.
 */
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, createReadStream, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostname } from 'node:os';
import { LocalPlatform } from '@kiln/control-plane/platforms/local';
import { UidRanges } from '@kiln/control-plane/platforms/uids/ranges';
import { Keys } from '@kiln/control-plane/store/keys';
import { EXECUTOR_MAIN } from '@kiln/control-plane/server';
// The raw client is the NFS module's own test client (compiled with the executor).
import { Nfs3TestClient, RawRpcClient } from '../../../executor/dist/nfs/test-client.js';
import { run as runCommand } from '../../../executor/dist/nfs/test-support.js';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { libnfsUrl, MNT3, NFS3, sessionSh, withSession as withNfsSession, type NfsSession } from '../support/nfs.js';

let k: TestKiln;
let local: string;
beforeAll(async () => {
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 2 } }, python: null, shell: null, provided: null } });
  local = mkdtempSync(join(tmpdir(), 'kiln-nfs-e2e-'));
});
afterAll(async () => {
  await k?.stop();
  if (local) rmSync(local, { recursive: true, force: true });
});

type Session = NfsSession;
const withSession = <T>(fn: (s: Session) => Promise<T>, body?: Record<string, unknown>): Promise<T> => withNfsSession(k, fn, body);
/** libnfs URL of `path` below the session's export ("" is the export root). */
const url = (s: Session, path = '', id = s.nfs.exportPath.slice(1)): string => libnfsUrl(s.nfs.port, id, path);
const sh = (s: Session, script: string) => sessionSh(k, s, script);
/** libnfs tools (nfs-cp, nfs-cat, nfs-ls), killed after 2 minutes. */
const run = (cmd: string, args: string[]) => runCommand(cmd, args, 120_000);

const sha256File = (path: string): Promise<string> =>
  new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (d) => h.update(d))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });

/** A raw NFSv3 client on the session's port; closed by the caller. */
async function rawClient(s: Session): Promise<Nfs3TestClient> {
  return new Nfs3TestClient(await RawRpcClient.connect(s.nfs.port));
}

describe('NFS export of session workspaces', () => {
  it('puts nfsUrl, the export and the mount command on the session record', async () => {
    await withSession(async (s) => {
      // The export is the session id and a secret only the session's tenant is shown.
      expect(s.nfs.exportPath).toMatch(new RegExp(`^/${s.id}-[0-9a-f]{32}$`));
      expect(s.nfsUrl).toBe(`nfs://127.0.0.1${s.nfs.exportPath}?nfsport=${s.nfs.port}&mountport=${s.nfs.port}&version=3`);
      expect(s.nfs).toMatchObject({ host: '127.0.0.1', readOnly: false, allow: [], url: s.nfsUrl });
      expect(s.nfs.mountCommand).toBe(`mount -t nfs -o nfsvers=3,tcp,nolock,port=${s.nfs.port},mountport=${s.nfs.port} 127.0.0.1:${s.nfs.exportPath} /mnt`);
      const got = await k.call('GET', `/api/v1/sessions/${s.id}`);
      expect(got.body).toMatchObject({ nfsUrl: s.nfsUrl, nfs: s.nfs });
      // The executor record (what a restarted control plane adopts) keeps the NFS port.
      const record = JSON.parse((await k.redis.get(`${k.prefix}:ses:${s.id}`)) as string) as { executorId: string };
      const exe = JSON.parse((await k.redis.get(`${k.prefix}:exe:${record.executorId}`)) as string) as { nfsPort?: number };
      expect(exe.nfsPort).toBe(s.nfs.port);
      const uids = new UidRanges(k.redis, Keys.hostUidRanges(hostname()));
      const adopted = await new LocalPlatform({ deployment: k.prefix, dataDir: k.dataDir, executorMain: EXECUTOR_MAIN, uids }).list();
      expect(adopted.find((h) => h.id === record.executorId)?.nfsPort).toBe(s.nfs.port);
      const doc = (await k.call('GET', '/api/v1/openapi.json')).body;
      expect(Object.keys(doc.components.schemas.SessionNfs.properties)).toEqual(expect.arrayContaining(['host', 'port', 'exportPath', 'mountCommand']));
      expect(doc.components.schemas.CreateSession.properties.nfs).toBeDefined();
    });
  });

  it('shows files written over NFS to processes in the sandbox, and the other way round', async () => {
    await withSession(async (s) => {
      writeFileSync(join(local, 'in.txt'), 'written over nfs\n');
      const cp = await run('nfs-cp', [join(local, 'in.txt'), url(s, '/in.txt')]);
      expect(cp.code, cp.stderr).toBe(0);
      const seen = await sh(s, 'cat /workspace/in.txt; stat -c %u in.txt');
      expect(seen).toMatchObject({ exitCode: 0, stdout: 'written over nfs\n1000\n' });

      expect((await sh(s, 'echo "from the sandbox" > out.txt')).exitCode).toBe(0);
      const cat = await run('nfs-cat', [url(s, '/out.txt')]);
      expect(cat.code, cat.stderr).toBe(0);
      expect(cat.stdout).toBe('from the sandbox\n');
    });
  });

  it('lists a directory tree, and mounts a directory below the export', async () => {
    await withSession(async (s) => {
      expect((await sh(s, 'mkdir -p src/lib/deep && echo a > src/a.ts && echo b > src/lib/b.ts && echo c > src/lib/deep/c.ts')).exitCode).toBe(0);
      const ls = await run('nfs-ls', ['-R', url(s)]);
      expect(ls.code, ls.stderr).toBe(0);
      for (const p of ['src', 'a.ts', 'lib', 'b.ts', 'deep', 'c.ts']) expect(ls.stdout).toContain(p);
      const sub = await run('nfs-cat', [url(s, '/src/lib/deep/c.ts')]);
      expect(sub.stdout).toBe('c\n');
      const c = await rawClient(s);
      try {
        const deep = await c.mount(`${s.nfs.exportPath}/src/lib`);
        expect(deep.status).toBe(MNT3.OK);
        expect((await c.listAll(deep.fh as Buffer)).filter((n) => !n.startsWith('.')).sort()).toEqual(['b.ts', 'deep']);
        expect((await c.mount(`${s.nfs.exportPath}/nope`)).status).toBe(MNT3.NOENT);
      } finally {
        c.rpc.close();
      }
    });
  });

  it('creates, renames and removes directories over NFS, seen at once in the sandbox', async () => {
    await withSession(async (s) => {
      const c = await rawClient(s);
      try {
        const root = (await c.mount(`${s.nfs.exportPath}`)).fh as Buffer;
        const made = await c.mkdir(root, 'made-over-nfs');
        expect(made.status).toBe(NFS3.OK);
        expect((await sh(s, 'test -d made-over-nfs && stat -c %u made-over-nfs')).stdout).toBe('1000\n');
        expect(await c.rename(root, 'made-over-nfs', root, 'renamed')).toBe(NFS3.OK);
        expect((await sh(s, 'ls /workspace')).stdout).toBe('renamed\n');
        expect(await c.rmdir(root, 'renamed')).toBe(NFS3.OK);
        expect((await sh(s, 'ls -A /workspace | wc -l')).stdout.trim()).toBe('0');
        // And the other way: a directory the sandbox makes is there for NFS at once.
        await sh(s, 'mkdir from-sandbox');
        expect((await c.lookup(root, 'from-sandbox')).status).toBe(NFS3.OK);
      } finally {
        c.rpc.close();
      }
    });
  });

  it('copies a 50 MB file in and out with the same sha256', async () => {
    await withSession(async (s) => {
      const src = join(local, 'big-in.bin');
      const chunk = Buffer.alloc(1 << 20);
      const fd = openSync(src, 'w');
      for (let i = 0; i < 50; i++) writeSync(fd, randomFillSync(chunk));
      closeSync(fd);
      const up = await run('nfs-cp', [src, url(s, '/big-in.bin')]);
      expect(up.code, up.stderr).toBe(0);
      const inside = await sh(s, 'sha256sum big-in.bin');
      expect(inside.stdout.split(' ')[0]).toBe(await sha256File(src));

      const made = await sh(s, 'head -c 52428800 /dev/urandom > big-out.bin && sha256sum big-out.bin');
      expect(made.exitCode, made.stderr).toBe(0);
      const back = join(local, 'big-out.bin');
      const down = await run('nfs-cp', [url(s, '/big-out.bin'), back]);
      expect(down.code, down.stderr).toBe(0);
      expect(await sha256File(back)).toBe(made.stdout.split(' ')[0]);
    });
  });

  it("keeps one session's mounts and handles away from another session's files and from the host", async () => {
    await withSession(async (a) => {
      await withSession(async (b) => {
        await sh(b, 'echo secret-of-b > secret.txt');
        // Sessions may share an executor (and port): every path must still stay in its export.
        const climb = await run('nfs-cat', [url(a, `/../${b.id}/secret.txt`)]);
        expect(climb.stdout).not.toContain('secret-of-b');
        const c = await rawClient(a);
        try {
          expect((await c.mount(`${b.nfs.exportPath}/..${a.nfs.exportPath}`)).status).toBe(MNT3.ACCES);
          expect((await c.mount(`${a.nfs.exportPath}/..${b.nfs.exportPath}`)).status).toBe(MNT3.ACCES);
          const rootA = (await c.mount(a.nfs.exportPath)).fh as Buffer;
          expect((await c.lookup(rootA, `../${b.id}`)).status).toBe(NFS3.ACCES);
          const up = await c.lookup(rootA, '..');
          expect((await c.lookup(up.fh as Buffer, 'secret.txt')).status).not.toBe(NFS3.OK);
          // A's handle with B's export tag spliced in (a forgery attempt) fails its MAC, whether
          // or not the two sessions share an executor (a different one has another secret).
          const cb = await rawClient(b);
          const rootB = (await cb.mount(b.nfs.exportPath)).fh as Buffer;
          cb.rpc.close();
          const forged = Buffer.from(rootA);
          rootB.copy(forged, 1, 1, 9);
          expect(forged.equals(rootA)).toBe(false);
          expect((await c.getattr(forged)).status).toBe(NFS3.STALE);
          expect((await c.lookup(forged, 'secret.txt')).status).toBe(NFS3.STALE);
          // Symlinks are never followed by the server: one to the host's /etc stays a link.
          await sh(a, 'ln -s /etc/passwd pw && ln -s / rootlink');
          const pw = await run('nfs-cat', [url(a, '/pw')]);
          expect(pw.stdout).not.toContain('root:');
          const link = await c.lookup(rootA, 'rootlink');
          expect((await c.lookup(link.fh as Buffer, 'etc')).status).not.toBe(NFS3.OK);
        } finally {
          c.rpc.close();
        }
      });
    });
  });

  it('refuses writes to a read-only export and still serves reads', async () => {
    await withSession(
      async (s) => {
        expect(s.nfs.readOnly).toBe(true);
        expect(s.nfs.mountCommand).toContain('nolock,ro,port=');
        await sh(s, 'echo keep > kept.txt');
        writeFileSync(join(local, 'ro.txt'), 'nope');
        const cp = await run('nfs-cp', [join(local, 'ro.txt'), url(s, '/ro.txt')]);
        expect(cp.code).not.toBe(0);
        expect((await run('nfs-cat', [url(s, '/kept.txt')])).stdout).toBe('keep\n');
        const c = await rawClient(s);
        try {
          const root = (await c.mount(`${s.nfs.exportPath}`)).fh as Buffer;
          expect((await c.mkdir(root, 'nope')).status).toBe(NFS3.ROFS);
          expect(await c.remove(root, 'kept.txt')).toBe(NFS3.ROFS);
        } finally {
          c.rpc.close();
        }
        expect((await sh(s, 'ls')).stdout).toBe('kept.txt\n');
      },
      { nfs: { readOnly: true } },
    );
  });

  it('refuses clients outside the allow-list and admits those inside', async () => {
    await withSession(
      async (s) => {
        expect(s.nfs.allow).toEqual(['10.9.8.0/24']);
        const ls = await run('nfs-ls', [url(s)]);
        expect(ls.code).not.toBe(0);
        const c = await rawClient(s);
        try {
          expect((await c.mount(`${s.nfs.exportPath}`)).status).toBe(MNT3.ACCES);
        } finally {
          c.rpc.close();
        }
      },
      { nfs: { allow: ['10.9.8.0/24'] } },
    );
    await withSession(
      async (s) => {
        await sh(s, 'echo ok > ok.txt');
        expect((await run('nfs-cat', [url(s, '/ok.txt')])).stdout).toBe('ok\n');
      },
      { nfs: { allow: ['127.0.0.0/8', '::1'] } },
    );
  });

  it('rejects malformed export options with a code that names the problem', async () => {
    const bad = async (nfs: unknown) => k.call('POST', '/api/v1/sessions', { template: 'nodejs', nfs });
    for (const allow of [['10.0.0.0/33'], ['not-an-ip'], ['::1/129'], ['10.0.0.1/x']]) {
      const res = await bad({ allow });
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.body.error.code).toBe('InvalidNfsAllowList');
      expect(res.body.error.message).toContain(allow[0]);
    }
    const unknown = await bad({ readOnly: true, mode: 'rw' });
    expect(unknown.status).toBe(400);
    const wrongType = await bad({ readOnly: 'yes' });
    expect(wrongType.status).toBe(400);
  });

  it('forgets the export when the session ends: MNT answers NOENT and old handles go STALE', async () => {
    const res = await k.call('POST', '/api/v1/sessions', { template: 'nodejs' });
    expect(res.status).toBe(201);
    const s = res.body as Session;
    const c = await rawClient(s);
    try {
      const root = (await c.mount(`${s.nfs.exportPath}`)).fh as Buffer;
      expect((await c.getattr(root)).status).toBe(NFS3.OK);
      expect((await k.call('DELETE', `/api/v1/sessions/${s.id}`)).status).toBe(204);
      expect((await c.mount(`${s.nfs.exportPath}`)).status).toBe(MNT3.NOENT);
      expect((await c.getattr(root)).status).toBe(NFS3.STALE);
      expect((await run('nfs-ls', [url(s)])).code).not.toBe(0);
      expect((await c.mount('/ses_doesnotexist')).status).toBe(MNT3.NOENT);
    } finally {
      c.rpc.close();
    }
  });

  it('survives malformed RPC records on the executor port and keeps serving', async () => {
    await withSession(async (s) => {
      await sh(s, 'echo alive > alive.txt');
      // A last-fragment record of 8 bytes that is not an RPC call, then a truncated call body.
      for (const bytes of [
        Buffer.from('800000080000000100000000', 'hex'),
        Buffer.from('80000010' + '00000001' + '00000000' + '00000002', 'hex'),
        Buffer.from('ffffffff', 'hex'),
      ]) {
        const raw = await RawRpcClient.connect(s.nfs.port);
        raw.sendRaw(bytes);
        await Promise.race([raw.closed, new Promise((r) => setTimeout(r, 500))]);
        raw.close();
      }
      expect((await run('nfs-cat', [url(s, '/alive.txt')])).stdout).toBe('alive\n');
    });
  });
});

describe('NFS export turned off', () => {
  let off: TestKiln;
  beforeAll(async () => {
    off = await startTestKiln({
      templates: { nodejs: { pool: { minIdle: 1 } }, python: null, shell: null, provided: null },
      env: { KILN_NFS_ENABLED: 'false' },
    });
  });
  afterAll(async () => {
    await off?.stop();
  });

  it('gives sessions no nfsUrl and refuses nfs options with NfsDisabled', async () => {
    const res = await off.call('POST', '/api/v1/sessions', { template: 'nodejs' });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    try {
      expect(res.body.nfsUrl).toBeUndefined();
      expect(res.body.nfs).toBeUndefined();
      const record = JSON.parse((await off.redis.get(`${off.prefix}:ses:${res.body.id}`)) as string) as { executorId: string };
      const exe = JSON.parse((await off.redis.get(`${off.prefix}:exe:${record.executorId}`)) as string) as { nfsPort?: number };
      expect(exe.nfsPort).toBeUndefined();
    } finally {
      await off.call('DELETE', `/api/v1/sessions/${res.body.id}`);
    }
    const refused = await off.call('POST', '/api/v1/sessions', { template: 'nodejs', nfs: { readOnly: true } });
    expect(refused.status).toBe(400);
    expect(refused.body.error.code).toBe('NfsDisabled');
  });
});
