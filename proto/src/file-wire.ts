import { FileChunk, FileWriteRequest } from './gen/kiln/executor/v1/files.js';

/**
 * The wire form of the file streams' data messages, for both ends, without the copies of the
 * generated code. A file moves as a stream of messages that carry nothing but one bytes field
 * (FileWriteRequest.data = 3 for uploads, FileChunk.data = 1 for downloads). The generated
 * encoder copies each chunk twice (into its writer, then out of it) and the generated decoder
 * once more (`Buffer.from(reader.bytes())`); at hundreds of MB/s those copies, and the garbage
 * they make, were most of the control plane's and executor's work per byte. Here a data-only
 * message is encoded as its few header bytes beside the chunk (no copy at all where the caller
 * can send both) and decoded as a view of the bytes it came in; any other message (the first
 * one with the path, the last one with `end`) goes through the generated code unchanged.
 */

/** Protobuf field numbers of the one bytes field of each data message. */
export const WRITE_DATA_FIELD = 3;
export const CHUNK_DATA_FIELD = 1;

/** A length-delimited field's tag byte (wire type 2); fields 1..15 fit in one byte. */
const tagOf = (field: number): number => (field << 3) | 2;

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeVarint(buf: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    buf[at++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[at++] = n;
  return at;
}

/**
 * The bytes that go before `length` bytes of data to make a gRPC length-prefixed message whose
 * protobuf holds only field `field`: the 5-byte gRPC prefix (uncompressed, big-endian length),
 * the field's tag and the data's length. Sending this and then the data itself is the message.
 */
export function framedDataHeader(field: number, length: number): Buffer {
  const inner = 1 + varintSize(length);
  const header = Buffer.allocUnsafe(5 + inner);
  header[0] = 0;
  header.writeUInt32BE(inner + length, 1);
  header[5] = tagOf(field);
  writeVarint(header, 6, length);
  return header;
}

/** A data-only message as one protobuf buffer (a single copy of `data`), for grpc-js serializers. */
export function encodeDataMessage(field: number, data: Uint8Array): Buffer {
  const header = 1 + varintSize(data.byteLength);
  const out = Buffer.allocUnsafe(header + data.byteLength);
  out[0] = tagOf(field);
  writeVarint(out, 1, data.byteLength);
  out.set(data, header);
  return out;
}

/**
 * The data of a message that is exactly one `field` bytes field (a view of `message`, not a
 * copy), or undefined for any other message (which the generated decoder then reads).
 */
export function dataOnly(message: Buffer, field: number): Buffer | undefined {
  if (message.length < 2 || message[0] !== tagOf(field)) return undefined;
  let length = 0;
  let scale = 1;
  // A varint of at most 5 bytes (lengths below 2^35): longer or unterminated is not ours.
  for (let at = 1; at < message.length && at < 6; at++) {
    const byte = message[at] as number;
    length += (byte & 0x7f) * scale;
    scale *= 128;
    if (byte < 0x80) return at + 1 + length === message.length ? message.subarray(at + 1) : undefined;
  }
  return undefined;
}

/** FileWriteRequest as the executor reads it: data-only messages without a copy. */
export function decodeWriteRequest(message: Buffer): FileWriteRequest {
  const data = dataOnly(message, WRITE_DATA_FIELD);
  if (data) return { sandboxId: '', path: '', data, mode: 0, end: false };
  return FileWriteRequest.decode(message);
}

/** FileChunk as the control plane reads it: without a copy. */
export function decodeChunk(message: Buffer): FileChunk {
  return { data: dataOnly(message, CHUNK_DATA_FIELD) ?? FileChunk.decode(message).data };
}

/** Room a buffer keeps before its data for a FileChunk's tag and length (a varint of up to 5 bytes). */
export const CHUNK_HEADER_ROOM = 6;

/** FileChunk messages already laid out around their data, by the data's view (see sealChunk). */
const sealed = new WeakMap<Uint8Array, Buffer>();

/**
 * For a buffer read into at CHUNK_HEADER_ROOM (`n` bytes): writes the FileChunk header just
 * before the data and returns the data's view, which encodeChunk then sends as it lies, with
 * no copy. The view must not be written to afterwards.
 */
export function sealChunk(buf: Buffer, n: number): Buffer {
  const start = CHUNK_HEADER_ROOM - 1 - varintSize(n);
  buf[start] = tagOf(CHUNK_DATA_FIELD);
  writeVarint(buf, start + 1, n);
  const data = buf.subarray(CHUNK_HEADER_ROOM, CHUNK_HEADER_ROOM + n);
  sealed.set(data, buf.subarray(start, CHUNK_HEADER_ROOM + n));
  return data;
}

/** FileChunk as the executor sends it: no copy for a sealed chunk, one for any other (not three). */
export function encodeChunk(chunk: FileChunk): Buffer {
  return sealed.get(chunk.data) ?? encodeDataMessage(CHUNK_DATA_FIELD, chunk.data);
}
