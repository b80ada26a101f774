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
import { BlockList, isIP } from 'node:net';
import { normalizeAddress } from './allow.js';

/** The longest v1 line the spec allows, CRLF included. */
export const MAX_PROXY_LINE = 107;
const SIGNATURE = Buffer.from('PROXY ');

/** Where the connection's first bytes stand. */
export type ProxyPreamble =
  | { kind: 'need-more' }
  | { kind: 'none' }
  | { kind: 'line'; client: string | undefined; rest: Buffer }
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
  if (parts[1] === 'UNKNOWN') return { kind: 'line', client: undefined, rest };
  const [, proto, src, dst, sport, dport] = parts;
  const family = proto === 'TCP4' ? 4 : proto === 'TCP6' ? 6 : 0;
  if (parts.length !== 6 || family === 0 || !src || !dst || isIP(src) !== family || isIP(dst) !== family || !isPort(sport) || !isPort(dport)) {
    return { kind: 'invalid', why: 'malformed PROXY line' };
  }
  return { kind: 'line', client: src, rest };
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
