/**
 * A minimal raw ONC RPC / NFSv3 client for the tests: it exercises the
 * procedures the libnfs command-line tools never send, and can put arbitrary
 * bytes on the wire. Not used by the server.
 */
import { type Socket, connect } from 'node:net';
import { RecordDecoder, frameRecord } from './record.js';
import { type RpcReply, encodeCall, parseReply } from './rpc.js';
import { type XdrReader, XdrWriter } from './xdr.js';

/** One TCP connection with xid-matched calls. */
export class RawRpcClient {
  private readonly decoder = new RecordDecoder(64 * 1024 * 1024);
  private readonly pending = new Map<number, (r: RpcReply) => void>();
  private xid = Math.floor(Math.random() * 0x7fffffff);
  /** Resolves when the server closes (or we close) the connection. */
  readonly closed: Promise<void>;

  private constructor(private readonly sock: Socket) {
    this.closed = new Promise((resolve) => sock.on('close', () => resolve()));
    sock.setNoDelay(true);
    sock.on('error', () => undefined);
    sock.on('data', (chunk: Buffer) => {
      for (const rec of this.decoder.push(chunk)) {
        const reply = parseReply(rec);
        const done = this.pending.get(reply.xid);
        this.pending.delete(reply.xid);
        done?.(reply);
      }
    });
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawRpcClient> {
    return new Promise((resolve, reject) => {
      const sock = connect(port, host, () => resolve(new RawRpcClient(sock)));
      sock.once('error', reject);
    });
  }

  /** Sends a call and waits for its reply (rejects if the connection closes first). */
  call(prog: number, vers: number, proc: number, args: Uint8Array = Buffer.alloc(0), cred?: { uid: number; gid: number } | null): Promise<RpcReply> {
    const xid = (this.xid = (this.xid + 1) >>> 0);
    return this.callWithXid(xid, encodeCall(xid, prog, vers, proc, args, cred === null ? undefined : cred));
  }

  /** Sends an already-encoded call message (framed here) and waits for the reply to `xid`. */
  callWithXid(xid: number, message: Buffer): Promise<RpcReply> {
    const reply = this.waitReply(xid);
    this.sock.write(Buffer.concat(frameRecord([message])));
    return reply;
  }

  /** Waits for the reply to `xid` (sent by other means, e.g. {@link sendRaw}). */
  waitReply(xid: number): Promise<RpcReply> {
    return new Promise((resolve, reject) => {
      this.pending.set(xid, resolve);
      void this.closed.then(() => reject(new Error('connection closed')));
    });
  }

  /** Writes raw bytes (no framing added). */
  sendRaw(bytes: Buffer): void {
    this.sock.write(bytes);
  }

  close(): void {
    this.sock.destroy();
  }
}

/** Decoded fattr3. */
export interface Fattr {
  type: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  size: bigint;
  used: bigint;
  fsid: bigint;
  fileid: bigint;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

const time = (r: XdrReader): bigint => BigInt(r.u32()) * 1_000_000_000n + BigInt(r.u32());

export function readFattr(r: XdrReader): Fattr {
  const type = r.u32();
  const mode = r.u32();
  const nlink = r.u32();
  const uid = r.u32();
  const gid = r.u32();
  const size = r.u64();
  const used = r.u64();
  r.u32();
  r.u32();
  const fsid = r.u64();
  const fileid = r.u64();
  return { type, mode, nlink, uid, gid, size, used, fsid, fileid, atimeNs: time(r), mtimeNs: time(r), ctimeNs: time(r) };
}

export const readPostOp = (r: XdrReader): Fattr | undefined => (r.bool() ? readFattr(r) : undefined);
const skipWcc = (r: XdrReader): void => {
  if (r.bool()) {
    r.u64();
    r.u64();
    r.u64();
    r.u64();
  }
  readPostOp(r);
};

/** NFSv3 calls over a {@link RawRpcClient}; results are decoded only as far as the tests need. */
export class Nfs3TestClient {
  constructor(readonly rpc: RawRpcClient) {}

  async mount(path: string): Promise<{ status: number; fh?: Buffer }> {
    const rep = await this.rpc.call(100005, 3, 1, new XdrWriter().string(path).toBuffer());
    const status = rep.body.u32();
    return status === 0 ? { status, fh: Buffer.from(rep.body.opaque(64)) } : { status };
  }

  /** Calls an NFS procedure and returns its nfsstat3 and the rest of the body. */
  async nfs(proc: number, args: XdrWriter): Promise<{ status: number; body: XdrReader }> {
    const rep = await this.rpc.call(100003, 3, proc, args.toBuffer());
    if (rep.replyStat !== 0 || rep.stat !== 0) throw new Error(`RPC failed: reply ${rep.replyStat} stat ${rep.stat}`);
    return { status: rep.body.u32(), body: rep.body };
  }

  async getattr(fh: Buffer): Promise<{ status: number; attr?: Fattr }> {
    const { status, body } = await this.nfs(1, new XdrWriter().opaque(fh));
    return status === 0 ? { status, attr: readFattr(body) } : { status };
  }

  async lookup(dir: Buffer, name: string): Promise<{ status: number; fh?: Buffer; attr?: Fattr }> {
    const { status, body } = await this.nfs(3, new XdrWriter().opaque(dir).string(name));
    if (status !== 0) return { status };
    const fh = Buffer.from(body.opaque(64));
    const attr = readPostOp(body);
    return attr ? { status, fh, attr } : { status, fh };
  }

  private async made(proc: number, args: XdrWriter): Promise<{ status: number; fh?: Buffer; attr?: Fattr }> {
    const { status, body } = await this.nfs(proc, args);
    if (status !== 0) return { status };
    const fh = body.bool() ? Buffer.from(body.opaque(64)) : undefined;
    const attr = readPostOp(body);
    return { status, ...(fh ? { fh } : {}), ...(attr ? { attr } : {}) };
  }

  mkdir(dir: Buffer, name: string, mode = 0o755): Promise<{ status: number; fh?: Buffer; attr?: Fattr }> {
    return this.made(9, sattr(new XdrWriter().opaque(dir).string(name), { mode }));
  }

  /** CREATE: how 0 UNCHECKED, 1 GUARDED (with mode/size), 2 EXCLUSIVE (with verifier). */
  create(
    dir: Buffer,
    name: string,
    how: 0 | 1 | 2,
    opt: { mode?: number; size?: bigint; verf?: Buffer } = {},
  ): Promise<{ status: number; fh?: Buffer; attr?: Fattr }> {
    const w = new XdrWriter().opaque(dir).string(name).u32(how);
    if (how === 2) w.fixed(opt.verf ?? Buffer.alloc(8));
    else sattr(w, opt);
    return this.made(8, w);
  }

  symlink(dir: Buffer, name: string, target: string): Promise<{ status: number; fh?: Buffer; attr?: Fattr }> {
    return this.made(10, sattr(new XdrWriter().opaque(dir).string(name), {}).string(target));
  }

  async readlink(fh: Buffer): Promise<{ status: number; target?: string }> {
    const { status, body } = await this.nfs(5, new XdrWriter().opaque(fh));
    if (status !== 0) return { status };
    readPostOp(body);
    return { status, target: body.string(4096) };
  }

  async remove(dir: Buffer, name: string): Promise<number> {
    return (await this.nfs(12, new XdrWriter().opaque(dir).string(name))).status;
  }

  async rmdir(dir: Buffer, name: string): Promise<number> {
    return (await this.nfs(13, new XdrWriter().opaque(dir).string(name))).status;
  }

  async rename(fromDir: Buffer, from: string, toDir: Buffer, to: string): Promise<number> {
    return (await this.nfs(14, new XdrWriter().opaque(fromDir).string(from).opaque(toDir).string(to))).status;
  }

  async setattr(fh: Buffer, s: { mode?: number; uid?: number; size?: bigint; mtime?: { sec: number; nsec: number } }): Promise<number> {
    return (await this.nfs(2, sattr(new XdrWriter().opaque(fh), s).bool(false))).status;
  }

  async write(fh: Buffer, offset: bigint, data: Buffer, stable = 0): Promise<{ status: number; count?: number; committed?: number; verf?: Buffer }> {
    const { status, body } = await this.nfs(7, new XdrWriter().opaque(fh).u64(offset).u32(data.length).u32(stable).opaque(data));
    if (status !== 0) return { status };
    skipWcc(body);
    return { status, count: body.u32(), committed: body.u32(), verf: Buffer.from(body.fixed(8)) };
  }

  async read(fh: Buffer, offset: bigint, count: number): Promise<{ status: number; data?: Buffer; eof?: boolean }> {
    const { status, body } = await this.nfs(6, new XdrWriter().opaque(fh).u64(offset).u32(count));
    if (status !== 0) return { status };
    readPostOp(body);
    body.u32();
    const eof = body.bool();
    return { status, eof, data: Buffer.from(body.opaque(1 << 21)) };
  }

  async commit(fh: Buffer): Promise<{ status: number; verf?: Buffer }> {
    const { status, body } = await this.nfs(21, new XdrWriter().opaque(fh).u64(0n).u32(0));
    if (status !== 0) return { status };
    skipWcc(body);
    return { status, verf: Buffer.from(body.fixed(8)) };
  }

  /** One READDIRPLUS (plus = true) or READDIR call. */
  async readdir(
    fh: Buffer,
    cookie: bigint,
    verf: Buffer,
    count: number,
    plus: boolean,
  ): Promise<{ status: number; verf?: Buffer; eof?: boolean; entries: Array<{ fileid: bigint; name: string; cookie: bigint; fh?: Buffer; attr?: Fattr }> }> {
    const w = new XdrWriter().opaque(fh).u64(cookie).fixed(verf).u32(count);
    if (plus) w.u32(count);
    const { status, body } = await this.nfs(plus ? 17 : 16, w);
    if (status !== 0) return { status, entries: [] };
    readPostOp(body);
    const newVerf = Buffer.from(body.fixed(8));
    const entries = [];
    while (body.bool()) {
      const e: { fileid: bigint; name: string; cookie: bigint; fh?: Buffer; attr?: Fattr } = {
        fileid: body.u64(),
        name: body.string(1024),
        cookie: body.u64(),
      };
      if (plus) {
        const attr = readPostOp(body);
        if (attr) e.attr = attr;
        if (body.bool()) e.fh = Buffer.from(body.opaque(64));
      }
      entries.push(e);
    }
    return { status, verf: newVerf, eof: body.bool(), entries };
  }

  /** Reads a whole directory with pages of `count` bytes. */
  async listAll(fh: Buffer, count = 4096, plus = true): Promise<string[]> {
    const names: string[] = [];
    let cookie = 0n;
    let verf: Buffer = Buffer.alloc(8);
    for (let i = 0; i < 10_000; i++) {
      const page = await this.readdir(fh, cookie, verf, count, plus);
      if (page.status !== 0) throw new Error(`readdir status ${page.status}`);
      for (const e of page.entries) names.push(e.name);
      verf = page.verf ?? verf;
      const last = page.entries.at(-1);
      if (page.eof || !last) break;
      cookie = last.cookie;
    }
    return names;
  }
}

/** Appends a sattr3 with the given fields set. */
export function sattr(w: XdrWriter, s: { mode?: number; uid?: number; size?: bigint; mtime?: { sec: number; nsec: number } }): XdrWriter {
  w.bool(s.mode !== undefined);
  if (s.mode !== undefined) w.u32(s.mode);
  w.bool(s.uid !== undefined);
  if (s.uid !== undefined) w.u32(s.uid);
  w.bool(false); // gid
  w.bool(s.size !== undefined);
  if (s.size !== undefined) w.u64(s.size);
  w.u32(0); // atime: don't change
  if (s.mtime) w.u32(2).u32(s.mtime.sec).u32(s.mtime.nsec);
  else w.u32(0);
  return w;
}
