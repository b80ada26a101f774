/**
 * Client address allow-lists: IPs and CIDRs, IPv4 and IPv6. Built on
 * net.BlockList; compiled lists are cached per distinct list.
 */
import { BlockList, isIP } from 'node:net';

const compiled = new Map<string, BlockList>();

/** Strips the IPv4-mapped prefix a dual-stack socket reports ("::ffff:10.0.0.1"). */
export function normalizeAddress(addr: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(addr);
  return m?.[1] ?? addr;
}

function compile(allow: string[]): BlockList {
  const key = allow.join(',');
  let list = compiled.get(key);
  if (list) return list;
  list = new BlockList();
  for (const raw of allow) {
    const entry = raw.trim();
    const slash = entry.indexOf('/');
    const ip = normalizeAddress(slash < 0 ? entry : entry.slice(0, slash));
    const family = isIP(ip);
    // An unparsable entry grants nothing: failing closed is the safe reading of a typo.
    if (family === 0) continue;
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (slash < 0) {
      list.addAddress(ip, type);
    } else {
      const prefix = Number(entry.slice(slash + 1));
      if (!Number.isInteger(prefix) || prefix < 0 || prefix > (family === 4 ? 32 : 128)) continue;
      list.addSubnet(ip, prefix, type);
    }
  }
  if (compiled.size > 1000) compiled.clear();
  compiled.set(key, list);
  return list;
}

/** True when `address` may use an export with this allow-list (empty/undefined = everyone). */
export function isAllowed(allow: string[] | undefined, address: string | undefined): boolean {
  if (!allow || allow.length === 0) return true;
  if (!address) return false;
  const ip = normalizeAddress(address);
  const family = isIP(ip);
  if (family === 0) return false;
  return compile(allow).check(ip, family === 4 ? 'ipv4' : 'ipv6');
}
