import { randomBytes } from 'node:crypto';
import { FileChunk, FileWriteRequest } from '@kiln/proto/executor/files';
import { CHUNK_DATA_FIELD, dataOnly, decodeWriteRequest, encodeChunk, framedDataHeader, WRITE_DATA_FIELD } from '@kiln/proto/file-wire';
import { describe, expect, it } from 'vitest';
import { ChunkReader, MessageReader } from './grpc-messages.js';

/** A message with its gRPC length prefix. */
function prefix(message: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + message.byteLength);
  out.writeUInt32BE(message.byteLength, 1);
  out.set(message, 5);
  return out;
}

describe('file stream wire', () => {
  it('encodes data-only messages exactly as the generated code does, and decodes them as views', () => {
    // (An empty chunk is never sent; proto3 would leave its field out, where this writes it empty.)
    for (const size of [1, 127, 128, 16_383, 16_384, 300_000]) {
      const data = randomBytes(size);
      const ours = Buffer.concat([framedDataHeader(WRITE_DATA_FIELD, size), data]);
      const generated = prefix(FileWriteRequest.encode({ sandboxId: '', path: '', data, mode: 0, end: false }).finish());
      expect(ours.equals(generated)).toBe(true);
      expect(encodeChunk({ data }).equals(Buffer.from(FileChunk.encode({ data }).finish()))).toBe(true);
      const decoded = decodeWriteRequest(generated.subarray(5));
      expect(Buffer.from(decoded.data).equals(data)).toBe(true);
    }
    // Any other message goes through the generated decoder: every field is read.
    const head = Buffer.from(FileWriteRequest.encode({ sandboxId: 'sbx', path: 'a/b', data: Buffer.from('x'), mode: 0o600, end: true }).finish());
    expect(decodeWriteRequest(head)).toMatchObject({ sandboxId: 'sbx', path: 'a/b', mode: 0o600, end: true });
    expect(Buffer.from(decodeWriteRequest(head).data).toString()).toBe('x');
    // A length that does not span the message exactly is not taken for data-only.
    expect(dataOnly(Buffer.from([(CHUNK_DATA_FIELD << 3) | 2, 3, 1, 2, 3, 4]), CHUNK_DATA_FIELD)).toBeUndefined();
    expect(dataOnly(Buffer.from([(CHUNK_DATA_FIELD << 3) | 2, 3, 1, 2]), CHUNK_DATA_FIELD)).toBeUndefined();
    expect(dataOnly(Buffer.from([(CHUNK_DATA_FIELD << 3) | 2, 0x83, 0x80, 0x80, 0x80, 0x80, 0x80]), CHUNK_DATA_FIELD)).toBeUndefined();
    expect(dataOnly(Buffer.from([(CHUNK_DATA_FIELD << 3) | 2, 2, 7, 8]), CHUNK_DATA_FIELD)?.equals(Buffer.from([7, 8]))).toBe(true);
  });

  it('reads data chunks and other messages however the stream is cut, with no byte lost or added', () => {
    const datas = [randomBytes(1000), randomBytes(0), randomBytes(200), randomBytes(70_000), randomBytes(3)];
    const messages = datas.map((data) => prefix(encodeChunk({ data })));
    // A message the generated encoder made with an unknown extra field is read whole.
    const other = Buffer.concat([FileChunk.encode({ data: Buffer.from('zz') }).finish(), Buffer.from([0x10, 0x05])]);
    messages.splice(2, 0, prefix(other));
    const expected = Buffer.concat([datas[0] as Buffer, Buffer.from('zz'), ...datas.slice(1)]);
    const stream = Buffer.concat(messages);
    for (const cut of [1, 2, 5, 6, 7, 11, 999, 1005, 4096, 65_536, stream.length]) {
      const reader = new ChunkReader(1 << 20);
      const out: Buffer[] = [];
      for (let at = 0; at < stream.length; at += cut) out.push(...reader.push(stream.subarray(at, at + cut)));
      expect(Buffer.concat(out).equals(expected), `cut every ${cut} bytes`).toBe(true);
      expect(reader.pending).toBe(0);
    }
    // A stream cut inside a message leaves bytes pending (the caller reports it as cut).
    const reader = new ChunkReader(1 << 20);
    reader.push(stream.subarray(0, 1500));
    expect(reader.pending).toBeGreaterThan(0);
  });

  it('refuses compressed and oversized messages', () => {
    expect(() => new MessageReader(100).push(Buffer.from([1, 0, 0, 0, 1, 0]))).toThrow(/compressed/);
    expect(() => new MessageReader(100).push(Buffer.from([0, 0, 0, 1, 0]))).toThrow(/at most 100/);
    expect(() => new ChunkReader(100).push(Buffer.from([0, 0, 0, 1, 0]))).toThrow(/at most 100/);
  });
});
