/**
 * The control plane's single-port NFS gateway (KILN_NFS_PORT) through the whole stack: every
 * session is mounted on one port and routed to its executor by MOUNT path or handle tag, with
 * the client's real address carried to the executor in a PROXY line. libnfs tools plus the NFS
 * module's raw client; two executors (one sandbox each) behind one gateway port.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { proxyAuthLine } from '../../../executor/dist/nfs/proxy-line.js';
import { frameRecord } from '../../../executor/dist/nfs/record.js';
import { encodeCall } from '../../../executor/dist/nfs/rpc.js';
import { Nfs3TestClient, RawRpcClient } from '../../../executor/dist/nfs/test-client.js';
import { run as runCommand } from '../../../executor/dist/nfs/test-support.js';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { libnfsUrl, MNT3, NFS3, sessionSh, withSession as withNfsSession, type NfsSession } from '../support/nfs.js';

let k: TestKiln;
let gw: number;
let local: string;
beforeAll(async () => {
  // One sandbox per executor, two warm: two sessions land on two executors.
  k = await startTestKiln({
    templates: { nodejs: { pool: { minIdle: 2, sandboxesPerExecutor: 1 } }, python: null, shell: null, provided: null },
    env: { KILN_NFS_PORT: '0' },
  });
  gw = k.kiln.nfsPort as number;
  local = mkdtempSync(join(tmpdir(), 'kiln-nfs-gw-'));
});
afterAll(async () => {
  await k?.stop();
  if (local) rmSync(local, { recursive: true, force: true });
});

type Session = NfsSession;
interface StoredNfs {
  executorId: string;
  nfs: { tag: string; upstream: { host: string; port: number } };
}

const withSession = <T>(fn: (s: Session) => Promise<T>, body?: Record<string, unknown>): Promise<T> => withNfsSession(k, fn, body);
const stored = async (s: Session): Promise<StoredNfs> => JSON.parse((await k.redis.get(`${k.prefix}:ses:${s.id}`)) as string) as StoredNfs;
/** libnfs URL of `path` below the session's export, through the gateway's one port. */
const url = (s: Session, path = ''): string => libnfsUrl(gw, s.nfs.exportPath.slice(1), path);
const sh = (s: Session, script: string) => sessionSh(k, s, script);
const gateway = async (): Promise<Nfs3TestClient> => new Nfs3TestClient(await RawRpcClient.connect(gw));
/** libnfs tools (nfs-cp, nfs-cat, nfs-ls), killed after 2 minutes. */
const run = (cmd: string, args: string[]) => runCommand(cmd, args, 120_000);

/** Opens a raw TCP connection (optionally from a given local address) and sends `bytes`; resolves with what came back before the peer closed or 1 s passed. */
function exchange(port: number, bytes: Buffer, localAddress?: string): Promise<{ closed: boolean; data: Buffer }> {
  return new Promise((resolve) => {
    const sock: Socket = connect({ host: '127.0.0.1', port, ...(localAddress ? { localAddress } : {}) });
    const got: Buffer[] = [];
    let closed = false;
    sock.on('data', (d: Buffer) => got.push(d));
    sock.on('error', () => undefined); // a reset shows as 'close' below
    sock.on('close', () => (closed = true));
    sock.write(bytes);
    setTimeout(() => {
      resolve({ closed, data: Buffer.concat(got) });
      sock.destroy();
    }, 1000);
  });
}
const nullCall = (xid: number): Buffer => Buffer.concat(frameRecord([encodeCall(xid, 100003, 3, 0, Buffer.alloc(0))]));

describe('single-port NFS gateway', () => {
  it('puts the gateway port on every session and copies files in and out through it', async () => {
    expect(gw).toBeGreaterThan(0);
    await withSession(async (s) => {
      expect(s.nfs.exportPath).toMatch(new RegExp(`^/${s.id}-[0-9a-f]{32}$`));
      expect(s.nfsUrl).toBe(`nfs://127.0.0.1${s.nfs.exportPath}?nfsport=${gw}&mountport=${gw}&version=3`);
      expect(s.nfs.mountCommand).toBe(`mount -t nfs -o nfsvers=3,tcp,nolock,port=${gw},mountport=${gw} 127.0.0.1:${s.nfs.exportPath} /mnt`);
      // Routing details stay internal: the tag and the executor's own address are not shown.
      expect(Object.keys(s.nfs).sort()).toEqual(['allow', 'exportPath', 'host', 'mountCommand', 'port', 'readOnly', 'url']);
      const rec = await stored(s);
      expect(rec.nfs.tag).toMatch(/^[0-9a-f]{16}$/);
      expect(rec.nfs.upstream.port).not.toBe(gw);

      writeFileSync(join(local, 'in.txt'), 'through the gateway\n');
      const cp = await run('nfs-cp', [join(local, 'in.txt'), url(s, '/in.txt')]);
      expect(cp.code, cp.stderr).toBe(0);
      expect(await sh(s, 'cat in.txt')).toMatchObject({ exitCode: 0, stdout: 'through the gateway\n' });
      await sh(s, 'echo from-sandbox > out.txt');
      const back = join(local, 'out.txt');
      const down = await run('nfs-cp', [url(s, '/out.txt'), back]);
      expect(down.code, down.stderr).toBe(0);
      expect(readFileSync(back, 'utf8')).toBe('from-sandbox\n');
      expect((await run('nfs-ls', [url(s)])).stdout).toContain('in.txt');
    });
  });

  it('routes two sessions on two executors over one port, and over one client connection', async () => {
    await withSession(async (a) => {
      await withSession(async (b) => {
        const [ra, rb] = [await stored(a), await stored(b)];
        expect(ra.executorId).not.toBe(rb.executorId);
        expect(ra.nfs.upstream.port).not.toBe(rb.nfs.upstream.port);
        for (const s of [a, b]) {
          writeFileSync(join(local, `${s.id}.txt`), `I am ${s.id}\n`);
          expect((await run('nfs-cp', [join(local, `${s.id}.txt`), url(s, '/me.txt')])).code).toBe(0);
        }
        const c = await gateway();
        try {
          const rootA = (await c.mount(a.nfs.exportPath)).fh as Buffer;
          const rootB = (await c.mount(b.nfs.exportPath)).fh as Buffer;
          const [fa, fb] = await Promise.all([c.lookup(rootA, 'me.txt'), c.lookup(rootB, 'me.txt')]);
          const [da, db] = await Promise.all([c.read(fa.fh as Buffer, 0n, 4096), c.read(fb.fh as Buffer, 0n, 4096)]);
          expect(da.data?.toString()).toBe(`I am ${a.id}\n`);
          expect(db.data?.toString()).toBe(`I am ${b.id}\n`);
          // B's tag spliced into A's handle routes to B's executor, whose MAC check says STALE.
          const forged = Buffer.from(rootA);
          rootB.copy(forged, 1, 1, 9);
          expect((await c.getattr(forged)).status).toBe(NFS3.STALE);
        } finally {
          c.rpc.close();
        }
      });
    });
  });

  it('answers NOENT for unknown sessions and STALE for unknown handle tags', async () => {
    const c = await gateway();
    try {
      expect((await c.mount('/ses_doesnotexist')).status).toBe(MNT3.NOENT);
      expect((await c.mount('/../etc')).status).toBe(MNT3.NOENT);
      const fh = randomBytes(41);
      fh[0] = 1;
      expect((await c.getattr(fh)).status).toBe(NFS3.STALE);
      expect((await c.lookup(fh, 'x')).status).toBe(NFS3.STALE);
      // An ended session's handles go STALE through the gateway too.
      const res = await k.call('POST', '/api/v1/sessions', { template: 'nodejs' });
      // The session id alone, or with another secret, mounts nothing: the export's secret is its tenant's.
      expect((await c.mount(`/${res.body.id}`)).status).toBe(MNT3.NOENT);
      expect((await c.mount(`/${res.body.id}-${'0'.repeat(32)}`)).status).toBe(MNT3.NOENT);
      const root = (await c.mount(res.body.nfs.exportPath)).fh as Buffer;
      expect((await c.getattr(root)).status).toBe(NFS3.OK);
      await k.call('DELETE', `/api/v1/sessions/${res.body.id}`);
      expect((await c.getattr(root)).status).toBe(NFS3.STALE);
      expect((await c.mount(res.body.nfs.exportPath)).status).toBe(MNT3.NOENT);
    } finally {
      c.rpc.close();
    }
  });

  it("checks the allow-list against the client's own address, not the gateway's", async () => {
    await withSession(
      async (s) => {
        expect((await run('nfs-ls', [url(s)])).code).not.toBe(0);
        const c = await gateway();
        try {
          expect((await c.mount(`${s.nfs.exportPath}`)).status).toBe(MNT3.ACCES);
        } finally {
          c.rpc.close();
        }
      },
      { nfs: { allow: ['10.0.0.0/8'] } },
    );
    await withSession(
      async (s) => {
        await sh(s, 'echo ok > ok.txt');
        expect((await run('nfs-cat', [url(s, '/ok.txt')])).stdout).toBe('ok\n');
        // The executor believes a PROXY line from the gateway's address (trusted) only with the
        // auth line that proves the sender holds its token: any other process on loopback is
        // cut off, and the gateway's claimed 10.9.9.9 is held against this 127.0.0.1-only session.
        const record = await stored(s);
        const up = record.nfs.upstream;
        const token = readFileSync(join(k.dataDir, 'executors', `${record.executorId}.token`), 'utf8');
        const mnt = encodeCall(
          77,
          100005,
          3,
          1,
          Buffer.concat([Buffer.from([0, 0, 0, s.nfs.exportPath.length]), Buffer.from(s.nfs.exportPath), Buffer.alloc((4 - (s.nfs.exportPath.length % 4)) % 4)]),
        );
        const line = 'PROXY TCP4 10.9.9.9 127.0.0.1 5555 2049';
        const unproven = await exchange(up.port, Buffer.concat([Buffer.from(`${line}\r\n`), ...frameRecord([mnt])]));
        expect(unproven).toEqual({ closed: true, data: Buffer.alloc(0) });
        const forged = await exchange(up.port, Buffer.concat([Buffer.from(`${line}\r\n${proxyAuthLine('not-the-token', line)}`), ...frameRecord([mnt])]));
        expect(forged).toEqual({ closed: true, data: Buffer.alloc(0) });
        const proxied = await exchange(up.port, Buffer.concat([Buffer.from(`${line}\r\n${proxyAuthLine(token, line)}`), ...frameRecord([mnt])]));
        expect(proxied.data.readUInt32BE(4 + 24)).toBe(MNT3.ACCES);
      },
      { nfs: { allow: ['127.0.0.1'] } },
    );
  });

  it('refuses a PROXY line from an untrusted peer at the executor, and serves that peer directly', async () => {
    await withSession(async (s) => {
      const up = (await stored(s)).nfs.upstream;
      // 127.0.0.2 is loopback but not in the executor's KILN_NFS_TRUSTED_PROXIES (127.0.0.1, ::1).
      const spoof = await exchange(up.port, Buffer.concat([Buffer.from('PROXY TCP4 10.1.2.3 127.0.0.1 1234 2049\r\n'), nullCall(5)]), '127.0.0.2');
      expect(spoof).toEqual({ closed: true, data: Buffer.alloc(0) });
      const direct = await exchange(up.port, nullCall(6), '127.0.0.2');
      expect(direct.data.readUInt32BE(4)).toBe(6);
    });
  });

  it('closes connections that send garbage and keeps serving everyone else', async () => {
    await withSession(async (s) => {
      await sh(s, 'echo alive > alive.txt');
      for (const bytes of [
        Buffer.from('GET / HTTP/1.1\r\n\r\n'),
        Buffer.from('800000080000000100000000', 'hex'),
        Buffer.from('7fffffff', 'hex'),
        randomBytes(4096),
      ]) {
        const r = await exchange(gw, bytes);
        expect(r.closed, bytes.subarray(0, 16).toString('hex')).toBe(true);
      }
      // An unknown program is answered (PROG_UNAVAIL), not dropped.
      const c = await gateway();
      try {
        expect((await c.rpc.call(100000, 2, 3)).stat).toBe(1);
        expect((await c.mount(`${s.nfs.exportPath}`)).status).toBe(MNT3.OK);
      } finally {
        c.rpc.close();
      }
      expect((await run('nfs-cat', [url(s, '/alive.txt')])).stdout).toBe('alive\n');
    });
  });

  it('closes the client when its executor cannot be reached, and keeps serving', async () => {
    await withSession(async (s) => {
      // Point the record at a port nothing listens on (as if the executor had died).
      const key = `${k.prefix}:ses:${s.id}`;
      const rec = JSON.parse((await k.redis.get(key)) as string) as StoredNfs;
      const real = rec.nfs.upstream.port;
      rec.nfs.upstream.port = 9;
      await k.redis.set(key, JSON.stringify(rec));
      const c = await gateway();
      await expect(c.mount(`${s.nfs.exportPath}`)).rejects.toThrow(/connection closed/);
      c.rpc.close();
      rec.nfs.upstream.port = real;
      await k.redis.set(key, JSON.stringify(rec));
      await new Promise((r) => setTimeout(r, 2100)); // the gateway's route cache
      await sh(s, 'echo back > back.txt');
      expect((await run('nfs-cat', [url(s, '/back.txt')])).stdout).toBe('back\n');
    });
  });
});
