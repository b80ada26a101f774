/**
 * What a connection says about where it goes, read from its first bytes: the SNI of a TLS
 * ClientHello, or the Host header of an HTTP/1 request. Untrusted input: every reader is
 * bounds-checked and answers `undefined` rather than throwing.
 */

/** The longest prefix the proxy buffers before it must decide. */
export const SNIFF_MAX_BYTES = 16 * 1024;

export type Sniffed =
  | { kind: 'tls'; sni: string | undefined }
  | { kind: 'http'; host: string | undefined }
  | { kind: 'other' }
  /** More bytes are needed to tell. */
  | { kind: 'partial' };

const HTTP_METHOD = /^(GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH|TRACE|CONNECT) /;

export function sniff(buf: Buffer): Sniffed {
  if (buf.length === 0) return { kind: 'partial' };
  if (buf[0] === 0x16) return sniffTls(buf);
  const head = buf.subarray(0, Math.min(buf.length, SNIFF_MAX_BYTES)).toString('latin1');
  if (!HTTP_METHOD.test(head)) return head.length < 8 && /^[A-Z]*$/.test(head) ? { kind: 'partial' } : { kind: 'other' };
  const end = head.indexOf('\r\n\r\n');
  if (end < 0) return buf.length >= SNIFF_MAX_BYTES ? { kind: 'http', host: undefined } : { kind: 'partial' };
  const hosts = head
    .slice(0, end)
    .split('\r\n')
    .slice(1)
    .filter((l) => /^host:/i.test(l))
    .map((l) => l.slice(5).trim().toLowerCase());
  // Two Host headers are a smuggling attempt: no host.
  if (hosts.length !== 1) return { kind: 'http', host: undefined };
  return { kind: 'http', host: stripPort(hosts[0] as string) };
}

function stripPort(host: string): string {
  return host.replace(/:\d+$/, '').replace(/\.$/, '');
}

function sniffTls(buf: Buffer): Sniffed {
  if (buf.length < 5) return { kind: 'partial' };
  const recordLen = buf.readUInt16BE(3);
  if (buf.length < 5 + recordLen) return 5 + recordLen > SNIFF_MAX_BYTES ? { kind: 'tls', sni: undefined } : { kind: 'partial' };
  const hello = buf.subarray(5, 5 + recordLen);
  return { kind: 'tls', sni: readSni(hello) };
}

/** The server_name extension of a ClientHello handshake message (RFC 6066), if it has one. */
function readSni(h: Buffer): string | undefined {
  if (h[0] !== 0x01 || h.length < 4) return undefined;
  let at = 4 + 2 + 32; // handshake header, version, random
  const skip = (lenBytes: 1 | 2): boolean => {
    if (at + lenBytes > h.length) return false;
    const len = lenBytes === 1 ? (h[at] as number) : h.readUInt16BE(at);
    at += lenBytes + len;
    return at <= h.length;
  };
  if (!skip(1) || !skip(2) || !skip(1)) return undefined; // session id, cipher suites, compression
  if (at + 2 > h.length) return undefined;
  const extEnd = Math.min(h.length, at + 2 + h.readUInt16BE(at));
  at += 2;
  while (at + 4 <= extEnd) {
    const type = h.readUInt16BE(at);
    const len = h.readUInt16BE(at + 2);
    const body = at + 4;
    if (body + len > extEnd) return undefined;
    if (type === 0 && len >= 5) {
      // server_name_list: list length, then entries of (type, length, name); host_name is type 0.
      const nameType = h[body + 2];
      const nameLen = h.readUInt16BE(body + 3);
      if (nameType !== 0 || body + 5 + nameLen > body + len) return undefined;
      return h.subarray(body + 5, body + 5 + nameLen).toString('latin1').toLowerCase().replace(/\.$/, '');
    }
    at = body + len;
  }
  return undefined;
}
