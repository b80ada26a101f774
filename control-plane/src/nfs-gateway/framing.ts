/**
 * ONC RPC record marking over TCP (RFC 5531 §11), as much as the NFS gateway needs: split a
 * byte stream into whole records (fragments joined), and frame a record as one fragment.
 * The gateway forwards records whole, so replies from two executors never interleave mid-record
 * on the client's connection.
 */

/**
 * Largest record accepted in either direction: a 1 MiB WRITE or READ reply plus headers, like
 * the executor's own limit. Bounds what one connection can make the gateway buffer.
 */
export const MAX_RECORD_BYTES = 2 * 1024 * 1024 + 64 * 1024;

const LAST_FRAGMENT = 0x80000000;

/** The stream is not a record stream (or a record is too big); the connection must be closed. */
export class FramingError extends Error {
  override name = 'FramingError';
}

/** Incremental splitter: push socket chunks, get back every record they complete. */
export class RecordReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private fragments: Buffer[] = [];
  private recordBytes = 0;
  /** Length and last-flag of the fragment being read, once its header is in. */
  private header: { len: number; last: boolean } | undefined;

  constructor(private readonly maxRecord = MAX_RECORD_BYTES) {}

  /** Appends data; throws {@link FramingError} as soon as a header announces too much. */
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
        this.header = { len: h & 0x7fffffff, last: (h & LAST_FRAGMENT) !== 0 };
        // Checked before the body is buffered, so a hostile length costs nothing.
        if (this.recordBytes + this.header.len > this.maxRecord) throw new FramingError(`RPC record exceeds ${this.maxRecord} bytes`);
      }
      if (this.buffered < this.header.len) break;
      this.fragments.push(this.take(this.header.len));
      this.recordBytes += this.header.len;
      if (this.header.last) {
        out.push(this.fragments.length === 1 ? (this.fragments[0] as Buffer) : Buffer.concat(this.fragments, this.recordBytes));
        this.fragments = [];
        this.recordBytes = 0;
      }
      this.header = undefined;
    }
    return out;
  }

  /** Bytes held that do not yet form a whole record. */
  get pending(): number {
    return this.buffered + this.recordBytes;
  }

  /** Removes exactly n buffered bytes (the caller checked they are there). */
  private take(n: number): Buffer {
    const first = this.chunks[0];
    if (first && first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return first.subarray(0, n);
    }
    const all = Buffer.concat(this.chunks, this.buffered);
    this.chunks = all.length > n ? [all.subarray(n)] : [];
    this.buffered -= n;
    return all.subarray(0, n);
  }
}

/** The 4-byte header of a single-fragment record of `length` bytes. */
export function recordHeader(length: number): Buffer {
  if (length > 0x7fffffff) throw new RangeError('record too large');
  const h = Buffer.allocUnsafe(4);
  h.writeUInt32BE((LAST_FRAGMENT | length) >>> 0, 0);
  return h;
}
