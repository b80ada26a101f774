/**
 * PROXY protocol v1 (haproxy's proxy-protocol.txt §2.1) at the start of an NFS connection.
 * The control plane's single-port NFS gateway sends `PROXY TCP4 <client> <gateway> <cport>
 * <gport>\r\n` before the first RPC record, so the allow-list sees the real client address
 * rather than the gateway's. Only peers in the trusted-proxy list may do that: anyone else
 * could claim any address, so a PROXY line from them closes the connection.
 *
 * An RPC record can never be mistaken for a PROXY line: "PROX" read as a record header is a
 * non-final fragment of ~1.3 GB, far over the record limit.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import { normalizeAddress } from './allow.js';

/** The longest v1 line the spec allows, CRLF included. */
export const MAX_PROXY_LINE = 107;
const SIGNATURE = Buffer.from('PROXY ');

/** Where the connection's first bytes stand. */
export type ProxyPreamble =
  | { kind: 'need-more' }
  | { kind: 'none' }
  | { kind: 'line'; client: string | undefined; line: string; rest: Buffer }
  | { kind: 'invalid'; why: string };

/**
 * Looks at the bytes received so far. `client` is undefined for `PROXY UNKNOWN` (the peer's
 * own address then stands); `rest` is whatever followed the line (the first RPC bytes).
 */
export function readProxyPreamble(buf: Buffer): ProxyPreamble {
  const n = Math.min(buf.length, SIGNATURE.length);
  if (!buf.subarray(0, n).equals(SIGNATURE.subarray(0, n))) return { kind: 'none' };
  const end = buf.indexOf('\r\n');
  if (end < 0) return buf.length >= MAX_PROXY_LINE ? { kind: 'invalid', why: 'PROXY line longer than 107 bytes' } : { kind: 'need-more' };
  if (end + 2 > MAX_PROXY_LINE) return { kind: 'invalid', why: 'PROXY line longer than 107 bytes' };
  const parts = buf.subarray(0, end).toString('latin1').split(' ');
  const rest = buf.subarray(end + 2);
  const line = buf.subarray(0, end).toString('latin1');
  if (parts[1] === 'UNKNOWN') return { kind: 'line', client: undefined, line, rest };
  const [, proto, src, dst, sport, dport] = parts;
  const family = proto === 'TCP4' ? 4 : proto === 'TCP6' ? 6 : 0;
  if (parts.length !== 6 || family === 0 || !src || !dst || isIP(src) !== family || isIP(dst) !== family || !isPort(sport) || !isPort(dport)) {
    return { kind: 'invalid', why: 'malformed PROXY line' };
  }
  return { kind: 'line', client: src, line, rest };
}

function isPort(s: string | undefined): boolean {
  return s !== undefined && /^\d{1,5}$/.test(s) && Number(s) <= 65535;
}

/** Peers allowed to send a PROXY line (KILN_NFS_TRUSTED_PROXIES); empty trusts nobody. */
export class TrustedProxies {
  private readonly list = new BlockList();
  readonly empty: boolean;

  /** `entries` are IPs or CIDRs; callers validate them (executor config does). */
  constructor(entries: readonly string[] = []) {
    this.empty = entries.length === 0;
    for (const entry of entries) {
      const slash = entry.indexOf('/');
      const ip = normalizeAddress(slash < 0 ? entry : entry.slice(0, slash));
      const type = isIP(ip) === 6 ? 'ipv6' : 'ipv4';
      if (slash < 0) this.list.addAddress(ip, type);
      else this.list.addSubnet(ip, Number(entry.slice(slash + 1)), type);
    }
  }

  /** True when `peer` (a socket's remote address) may speak for its clients. */
  trusts(peer: string | undefined): boolean {
    if (this.empty || !peer) return false;
    const ip = normalizeAddress(peer);
    const family = isIP(ip);
    return family !== 0 && this.list.check(ip, family === 4 ? 'ipv4' : 'ipv6');
  }
}

/**
 * Being on the trusted-proxy list is not enough to be believed: any process on a trusted
 * address (loopback, for a local executor) could send a PROXY line. The gateway proves it holds
 * the executor's agent token with a second line, `KILN-AUTH <hex HMAC-SHA256(token, PROXY
 * line)>`, right after the PROXY line; without it, or with a wrong one, the connection closes.
 */
const AUTH_PREFIX = 'KILN-AUTH ';
/** Length of the auth line, CRLF included. */
export const AUTH_LINE_BYTES = AUTH_PREFIX.length + 64 + 2;

function tagOf(key: string, line: string): string {
  return createHmac('sha256', key).update(line, 'latin1').digest('hex');
}

/** The auth line that follows `line` (a PROXY line without its CRLF), CRLF included. */
export function proxyAuthLine(key: string, line: string): string {
  return `${AUTH_PREFIX}${tagOf(key, line)}\r\n`;
}

/** Checks the auth line at the start of `buf` for PROXY line `line`. */
export function readProxyAuth(buf: Buffer, key: string, line: string): 'need-more' | 'ok' | 'bad' {
  if (buf.length < AUTH_LINE_BYTES) return buf.subarray(0, AUTH_PREFIX.length).equals(Buffer.from(AUTH_PREFIX).subarray(0, Math.min(buf.length, AUTH_PREFIX.length))) ? 'need-more' : 'bad';
  const got = buf.subarray(0, AUTH_LINE_BYTES);
  const want = Buffer.from(proxyAuthLine(key, line), 'latin1');
  return timingSafeEqual(got, want) ? 'ok' : 'bad';
}
