import { crc32 } from 'node:zlib';

/**
 * AWS's event stream framing (application/vnd.amazon.eventstream), the body of
 * InvokeWithResponseStream as the SDK decodes it: each message is its total length, its headers'
 * length, a CRC32 of those eight bytes, the headers (name length, name, type 7 = string, value
 * length, value), the payload, and a CRC32 of everything before it.
 */
export function eventMessage(headers: Record<string, string>, payload: Uint8Array): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(headers)) {
    const n = Buffer.from(name, 'utf8');
    const v = Buffer.from(value, 'utf8');
    const type = Buffer.alloc(3);
    type.writeUInt8(7, 0);
    type.writeUInt16BE(v.length, 1);
    parts.push(Buffer.from([n.length]), n, type, v);
  }
  const headerBytes = Buffer.concat(parts);
  const total = 12 + headerBytes.length + payload.length + 4;
  const message = Buffer.alloc(total);
  message.writeUInt32BE(total, 0);
  message.writeUInt32BE(headerBytes.length, 4);
  message.writeUInt32BE(crc32(message.subarray(0, 8)), 8);
  headerBytes.copy(message, 12);
  message.set(payload, 12 + headerBytes.length);
  message.writeUInt32BE(crc32(message.subarray(0, total - 4)), total - 4);
  return message;
}

/** One event of the stream: `:event-type` names the member of the SDK's union (PayloadChunk, InvokeComplete). */
export function streamEvent(type: string, contentType: string, payload: Uint8Array): Buffer {
  return eventMessage({ ':event-type': type, ':content-type': contentType, ':message-type': 'event' }, payload);
}
