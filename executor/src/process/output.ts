/** Keeps the first `cap` bytes of a stream and counts the rest, so huge output costs no memory. */
export class CappedBuffer {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  truncated = false;

  constructor(private readonly cap: number) {}

  push(chunk: Buffer): void {
    const room = this.cap - this.size;
    if (room <= 0) {
      this.truncated = true;
      return;
    }
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    if (part.length < chunk.length) this.truncated = true;
    this.chunks.push(part);
    this.size += part.length;
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks, this.size);
  }
}

/** Keeps the last `cap` bytes of a stream (background processes' output). */
export class TailBuffer {
  private buf = Buffer.alloc(0);

  constructor(private readonly cap: number) {}

  push(chunk: Buffer): void {
    const joined = this.buf.length + chunk.length > this.cap * 2 ? Buffer.concat([this.buf, chunk]).subarray(-this.cap) : Buffer.concat([this.buf, chunk]);
    this.buf = joined.length > this.cap ? Buffer.from(joined.subarray(-this.cap)) : joined;
  }

  bytes(): Buffer {
    return this.buf;
  }
}
