/**
 * XDR (RFC 4506) encoding and decoding: the subset ONC RPC, MOUNT v3 and
 * NFSv3 need. Everything is big-endian and padded to 4-byte units.
 */

/** Thrown when the bytes cannot be decoded; the RPC layer turns it into GARBAGE_ARGS. */
export class XdrError extends Error {
  override name = 'XdrError';
}

const pad4 = (n: number): number => (4 - (n & 3)) & 3;

/** Sequential reader over one RPC message. Never reads past the end: throws {@link XdrError}. */
export class XdrReader {
  private pos: number;

  constructor(
    private readonly buf: Buffer,
    offset = 0,
  ) {
    this.pos = offset;
  }

  /** Bytes not consumed yet. */
  get remaining(): number {
    return this.buf.length - this.pos;
  }

  get offset(): number {
    return this.pos;
  }

  private need(n: number): void {
    if (n < 0 || this.pos + n > this.buf.length) {
      throw new XdrError(`XDR underflow: need ${n} bytes at ${this.pos}, have ${this.remaining}`);
    }
  }

  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  i32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  /** Unsigned hyper as bigint: offsets and sizes exceed 2^53. */
  u64(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  bool(): boolean {
    const v = this.u32();
    if (v > 1) throw new XdrError(`bad XDR bool ${v}`);
    return v === 1;
  }

  /** Fixed-length opaque; returns a view (no copy) into the message. */
  fixed(len: number): Buffer {
    this.need(len + pad4(len));
    const v = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len + pad4(len);
    return v;
  }

  /** Variable-length opaque with an upper bound from the protocol spec. */
  opaque(max: number): Buffer {
    const len = this.u32();
    if (len > max) throw new XdrError(`opaque length ${len} exceeds ${max}`);
    return this.fixed(len);
  }

  /** Variable-length string. Decoded as UTF-8; NFS names are bytes but Linux clients send UTF-8. */
  string(max: number): string {
    return this.opaque(max).toString('utf8');
  }
}

/**
 * Append-only writer. Large payloads (READ data) are referenced, not copied:
 * the result is a list of chunks suitable for a vectored socket write.
 */
export class XdrWriter {
  private chunks: Buffer[] = [];
  private cur: Buffer;
  private pos = 0;
  private total = 0;

  constructor(initial = 256) {
    this.cur = Buffer.allocUnsafe(initial);
  }

  /** Total encoded length so far. */
  get length(): number {
    return this.total + this.pos;
  }

  private room(n: number): void {
    if (this.pos + n <= this.cur.length) return;
    this.flushCur();
    this.cur = Buffer.allocUnsafe(Math.max(n, 1024));
  }

  private flushCur(): void {
    if (this.pos > 0) {
      this.chunks.push(this.cur.subarray(0, this.pos));
      this.total += this.pos;
    }
    this.cur = this.cur.subarray(this.pos);
    this.pos = 0;
  }

  u32(v: number): this {
    this.room(4);
    this.cur.writeUInt32BE(v >>> 0, this.pos);
    this.pos += 4;
    return this;
  }

  i32(v: number): this {
    this.room(4);
    this.cur.writeInt32BE(v | 0, this.pos);
    this.pos += 4;
    return this;
  }

  u64(v: bigint | number): this {
    this.room(8);
    this.cur.writeBigUInt64BE(BigInt.asUintN(64, BigInt(v)), this.pos);
    this.pos += 8;
    return this;
  }

  bool(v: boolean): this {
    return this.u32(v ? 1 : 0);
  }

  /** Fixed-length opaque, copied into the writer (small values: verifiers, handles). */
  fixed(data: Uint8Array): this {
    const p = pad4(data.length);
    this.room(data.length + p);
    this.cur.set(data, this.pos);
    this.cur.fill(0, this.pos + data.length, this.pos + data.length + p);
    this.pos += data.length + p;
    return this;
  }

  opaque(data: Uint8Array): this {
    return this.u32(data.length).fixed(data);
  }

  /** Variable-length opaque whose bytes are referenced rather than copied. */
  opaqueRef(data: Buffer): this {
    if (data.length < 4096) return this.opaque(data);
    this.u32(data.length);
    this.flushCur();
    this.chunks.push(data);
    this.total += data.length;
    const p = pad4(data.length);
    if (p) this.raw(Buffer.alloc(p));
    return this;
  }

  /** Raw bytes, no length or padding. */
  raw(data: Uint8Array): this {
    this.room(data.length);
    this.cur.set(data, this.pos);
    this.pos += data.length;
    return this;
  }

  string(s: string): this {
    return this.opaque(Buffer.from(s, 'utf8'));
  }

  /** The encoded chunks, in order. The writer must not be used afterwards. */
  chunksOut(): Buffer[] {
    this.flushCur();
    return this.chunks;
  }

  /** The encoded message as one buffer (copies when there are several chunks). */
  toBuffer(): Buffer {
    const c = this.chunksOut();
    return c.length === 1 && c[0] ? c[0] : Buffer.concat(c);
  }
}
