/**
 * ONC RPC record marking over TCP (RFC 5531 §11): each record is a sequence of
 * fragments, each preceded by a 4-byte header whose top bit marks the last
 * fragment and whose low 31 bits give the fragment length.
 */

/** Largest accepted record: a 1 MiB WRITE plus generous room for headers. */
export const MAX_RECORD_BYTES = 2 * 1024 * 1024 + 64 * 1024;

const LAST_FRAGMENT = 0x80000000;

/** The peer sent something that is not a valid record stream; the connection must be closed. */
export class RecordError extends Error {
  override name = 'RecordError';
}

/** Fragments at least this large are assembled in pooled buffers. */
const POOLED_MIN = 64 * 1024;
const POOL_MAX = 8;
/**
 * Reusable assembly buffers, shared by all connections. A stream of 1 MiB
 * WRITEs would otherwise allocate (and page-fault in) fresh memory for every
 * call; recycling keeps sequential write throughput steady from the start.
 */
const pool: Buffer[] = [];
const pooled = new WeakSet<ArrayBufferLike>();

function pooledBuffer(n: number): Buffer {
  let b = pool.pop();
  if (!b) {
    b = Buffer.allocUnsafeSlow(MAX_RECORD_BYTES);
    pooled.add(b.buffer);
  }
  return b.subarray(0, n);
}

/**
 * Incremental decoder: feed it socket chunks, get back whole records.
 * Bytes are copied at most once (when a fragment spans several chunks).
 */
export class RecordDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private fragments: Buffer[] = [];
  private recordBytes = 0;
  private header: { len: number; last: boolean } | undefined;

  constructor(private readonly maxRecord = MAX_RECORD_BYTES) {}

  /** Appends data and returns every record it completes. Throws {@link RecordError} on an oversized record. */
  push(data: Buffer): Buffer[] {
    const out: Buffer[] = [];
    if (data.length) {
      this.chunks.push(data);
      this.buffered += data.length;
    }
    for (;;) {
      if (!this.header) {
        if (this.buffered < 4) break;
        const h = this.take(4).readUInt32BE(0);
        const len = h & 0x7fffffff;
        this.header = { len, last: (h & LAST_FRAGMENT) !== 0 };
        // Check before buffering the body, so a hostile length costs nothing.
        if (this.recordBytes + this.header.len > this.maxRecord) {
          throw new RecordError(`RPC record exceeds ${this.maxRecord} bytes`);
        }
      }
      if (this.buffered < this.header.len) break;
      this.fragments.push(this.take(this.header.len));
      this.recordBytes += this.header.len;
      const last = this.header.last;
      this.header = undefined;
      if (last) {
        const f = this.fragments;
        out.push(f.length === 1 && f[0] ? f[0] : Buffer.concat(f, this.recordBytes));
        this.fragments = [];
        this.recordBytes = 0;
      }
    }
    return out;
  }

  /** Removes exactly n buffered bytes (caller checked they exist). */
  private take(n: number): Buffer {
    const first = this.chunks[0];
    if (n === 0) return Buffer.alloc(0);
    if (first && first.length >= n) {
      const v = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return v;
    }
    const v = n >= POOLED_MIN && n <= MAX_RECORD_BYTES ? pooledBuffer(n) : Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0];
      if (!c) throw new RecordError('record decoder underflow');
      const k = Math.min(c.length, n - filled);
      c.copy(v, filled, 0, k);
      filled += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.buffered -= n;
    return v;
  }

  /**
   * Hands a record back once nothing refers to it any more (its call has
   * been answered). Records that did not come from the pool are ignored.
   */
  static recycle(record: Buffer): void {
    if (!pooled.has(record.buffer) || pool.length >= POOL_MAX) return;
    const whole = Buffer.from(record.buffer, 0, record.buffer.byteLength);
    if (!pool.some((b) => b.buffer === whole.buffer)) pool.push(whole);
  }
}

/** Frames a message (given as chunks) as a single-fragment record: returns the chunks to write, header first. */
export function frameRecord(chunks: Buffer[]): Buffer[] {
  let len = 0;
  for (const c of chunks) len += c.length;
  if (len > 0x7fffffff) throw new RangeError('record too large');
  const h = Buffer.allocUnsafe(4);
  h.writeUInt32BE((LAST_FRAGMENT | len) >>> 0, 0);
  return [h, ...chunks];
}
