import { status } from '@grpc/grpc-js';
import { CHUNK_DATA_FIELD, decodeChunk } from '@kiln/proto/file-wire';
import { RpcError } from './unary.js';

/** Reading gRPC's length-prefixed messages off an HTTP/2 stream, for file-streams.ts. */

/**
 * Splits a byte stream into gRPC messages. A message inside one chunk is a view of it; one
 * that spans chunks is gathered into a buffer of its own size (at most maxMessageBytes).
 */
export class MessageReader {
  private parts: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly maxMessageBytes: number) {}

  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    if (chunk.length === 0) return out;
    this.parts.push(chunk);
    this.buffered += chunk.length;
    while (this.buffered >= 5) {
      const flag = this.byteAt(0);
      if (flag !== 0) throw new RpcError(status.INTERNAL, 'a compressed message, which was not asked for');
      const length = this.byteAt(1) * 2 ** 24 + ((this.byteAt(2) << 16) | (this.byteAt(3) << 8) | this.byteAt(4));
      if (length > this.maxMessageBytes) throw new RpcError(status.RESOURCE_EXHAUSTED, `a message of ${length} bytes; at most ${this.maxMessageBytes} are read`);
      if (this.buffered < 5 + length) break;
      out.push(this.take(5 + length).subarray(5));
    }
    return out;
  }

  /**
   * As push, but stops at a message that is exactly one bytes field `field` once its header
   * (prefix, tag and length) has arrived: `dataOnly` is then its data's length, and `consumed`
   * how many bytes of `chunk` were taken up to its first data byte (the rest are the data's,
   * and what follows it, for the caller). Held bytes before `chunk` are only ever headers.
   */
  pushUntilData(chunk: Buffer, field: number): { messages: Buffer[]; dataOnly?: number; consumed: number } {
    const messages: Buffer[] = [];
    const before = this.buffered;
    this.parts.push(chunk);
    this.buffered += chunk.length;
    while (this.buffered >= 5) {
      if (this.byteAt(0) !== 0) throw new RpcError(status.INTERNAL, 'a compressed message, which was not asked for');
      const length = this.byteAt(1) * 2 ** 24 + ((this.byteAt(2) << 16) | (this.byteAt(3) << 8) | this.byteAt(4));
      if (length > this.maxMessageBytes) throw new RpcError(status.RESOURCE_EXHAUSTED, `a message of ${length} bytes; at most ${this.maxMessageBytes} are read`);
      const header = this.dataHeaderSize(length, field);
      if (header > 0) {
        // Everything held before `chunk` was this message's header (data is never held).
        const consumed = this.consumedOf(chunk, before, 5 + header);
        this.parts = [];
        this.buffered = 0;
        return { messages, dataOnly: length - header, consumed };
      }
      if (header === 0 || this.buffered < 5 + length) break;
      messages.push(this.take(5 + length).subarray(5));
    }
    return { messages, consumed: chunk.length };
  }

  /**
   * For a message of `length` at the front: the size of its tag and varint when it is exactly
   * field `field` (> 0), 0 when its header has not all arrived yet (and the message is not
   * whole), -1 when it is some other message.
   */
  private dataHeaderSize(length: number, field: number): number {
    const whole = this.buffered >= 5 + length;
    if (length < 2) return whole ? -1 : 0;
    if (this.buffered < 6) return 0;
    if (this.byteAt(5) !== ((field << 3) | 2)) return -1;
    let value = 0;
    let scale = 1;
    for (let i = 1; i <= 5 && i < length; i++) {
      if (this.buffered < 6 + i) return whole ? -1 : 0;
      const byte = this.byteAt(5 + i);
      value += (byte & 0x7f) * scale;
      scale *= 128;
      if (byte < 0x80) return 1 + i + value === length ? 1 + i : -1;
    }
    return -1;
  }

  /** How far into `chunk` the first `n` held bytes reach, when `before` were held before it. */
  private consumedOf(chunk: Buffer, before: number, n: number): number {
    // Messages taken whole from the front were taken from `chunk` after the held bytes.
    const taken = before + chunk.length - this.buffered;
    return Math.max(0, taken + n - before);
  }

  /** Bytes left that make no whole message (a stream that ends with some was cut). */
  get pending(): number {
    return this.buffered;
  }

  private byteAt(i: number): number {
    for (const part of this.parts) {
      if (i < part.length) return part[i] as number;
      i -= part.length;
    }
    return 0;
  }

  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.parts[0] as Buffer;
    if (first.length >= n) {
      const view = first.subarray(0, n);
      if (first.length === n) this.parts.shift();
      else this.parts[0] = first.subarray(n);
      return view;
    }
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const part = this.parts[0] as Buffer;
      const used = Math.min(part.length, n - at);
      part.copy(out, at, 0, used);
      at += used;
      if (used === part.length) this.parts.shift();
      else this.parts[0] = part.subarray(used);
    }
    return out;
  }
}

/**
 * Reads FileChunk messages as the bytes of their data, without gathering a message first: once
 * a message's header shows it holds nothing but its data field (as the executor sends them),
 * its bytes are passed on as views of the frames they arrive in, however the message is split.
 * Any other message is gathered whole and decoded by the generated code.
 */
export class ChunkReader {
  private readonly messages: MessageReader;
  /** Bytes of a data-only message's data still to come. */
  private dataLeft = 0;

  constructor(maxMessageBytes: number) {
    this.messages = new MessageReader(maxMessageBytes);
  }

  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let rest = chunk;
    while (rest.length > 0) {
      if (this.dataLeft > 0) {
        const n = Math.min(this.dataLeft, rest.length);
        out.push(rest.subarray(0, n));
        this.dataLeft -= n;
        rest = rest.subarray(n);
        continue;
      }
      const { messages, dataOnly, consumed } = this.messages.pushUntilData(rest, CHUNK_DATA_FIELD);
      for (const m of messages) {
        const data = decodeChunk(m).data;
        if (data.length > 0) out.push(data);
      }
      if (dataOnly === undefined) break;
      // The reader stopped at the start of a data-only message's data, `consumed` bytes in.
      this.dataLeft = dataOnly;
      rest = rest.subarray(consumed);
    }
    return out;
  }

  /** Bytes of a message still expected or held: a stream that ends with some was cut. */
  get pending(): number {
    return this.dataLeft + this.messages.pending;
  }
}
