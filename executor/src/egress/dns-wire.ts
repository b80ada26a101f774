/**
 * The few bits of the DNS wire format (RFC 1035) that Kiln's per-sandbox responder needs: read
 * one question from a query, write an answer with A records or an error code. Everything is
 * read from untrusted bytes: any malformed query yields undefined, never a throw.
 */

export const TYPE_A = 1;
export const RCODE = { noError: 0, formErr: 1, servFail: 2, nxDomain: 3, refused: 5 } as const;

export interface DnsQuestion {
  id: number;
  /** Lower-case, without the trailing dot. */
  name: string;
  type: number;
  /** The question section as sent (echoed in the answer). */
  raw: Buffer;
  /** The query's RD flag, echoed. */
  recursionDesired: boolean;
}

export function parseQuery(msg: Buffer): DnsQuestion | undefined {
  if (msg.length < 12 || msg.length > 512) return undefined;
  const flags = msg.readUInt16BE(2);
  if (flags & 0x8000 || ((flags >> 11) & 0xf) !== 0) return undefined; // a response, or not QUERY
  if (msg.readUInt16BE(4) !== 1) return undefined; // exactly one question
  const labels: string[] = [];
  let at = 12;
  for (;;) {
    const len = msg[at];
    if (len === undefined || len > 63) return undefined; // compression pointers have no place in a question
    at++;
    if (len === 0) break;
    if (at + len > msg.length) return undefined;
    labels.push(msg.subarray(at, at + len).toString('latin1').toLowerCase());
    at += len;
  }
  if (at + 4 > msg.length) return undefined;
  const name = labels.join('.');
  if (name.length > 253) return undefined;
  return { id: msg.readUInt16BE(0), name, type: msg.readUInt16BE(at), raw: msg.subarray(12, at + 4), recursionDesired: (flags & 0x0100) !== 0 };
}

/** An answer to `q`: `rcode`, and for A questions answered NOERROR, one A record per address. */
export function buildAnswer(q: DnsQuestion, rcode: number, addresses: readonly string[] = [], ttl = 30): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(q.id, 0);
  // QR, AA, RA; RD echoed.
  header.writeUInt16BE(0x8000 | 0x0400 | 0x0080 | (q.recursionDesired ? 0x0100 : 0) | (rcode & 0xf), 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(addresses.length, 6);
  const records = addresses.map((ip) => {
    const r = Buffer.alloc(16);
    r.writeUInt16BE(0xc00c, 0); // the name at offset 12 (the question's)
    r.writeUInt16BE(TYPE_A, 2);
    r.writeUInt16BE(1, 4); // IN
    r.writeUInt32BE(ttl, 6);
    r.writeUInt16BE(4, 10);
    ip.split('.').forEach((o, i) => r.writeUInt8(Number(o), 12 + i));
    return r;
  });
  return Buffer.concat([header, q.raw, ...records]);
}
