/** An IPv4 network in CIDR form, normalised (host bits zero). */
export interface Cidr4 {
  /** The network address as an unsigned 32-bit number. */
  base: number;
  prefix: number;
}

const OCTET = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/**
 * Parses `a.b.c.d/n` strictly: four decimal octets without leading zeros, a prefix 0-32, and no
 * host bits set (`10.0.0.1/8` is refused, so what a template says is what the route table gets).
 * Returns undefined for anything else, IPv6 included.
 */
export function parseCidr4(text: string): Cidr4 | undefined {
  const m = /^([0-9.]+)\/(0|[1-9]\d?)$/.exec(text);
  if (!m) return undefined;
  const octets = (m[1] as string).split('.');
  const prefix = Number(m[2]);
  if (octets.length !== 4 || !octets.every((o) => OCTET.test(o)) || prefix > 32) return undefined;
  const base = octets.reduce((n, o) => n * 256 + Number(o), 0);
  if (base % 2 ** (32 - prefix) !== 0) return undefined;
  return { base, prefix };
}

/** True when the two networks share any address. */
export function overlaps(a: Cidr4, b: Cidr4): boolean {
  const size = 2 ** (32 - Math.min(a.prefix, b.prefix));
  return Math.floor(a.base / size) === Math.floor(b.base / size);
}

export function formatCidr4(c: Cidr4): string {
  const o = [24, 16, 8, 0].map((shift) => Math.floor(c.base / 2 ** shift) % 256);
  return `${o.join('.')}/${c.prefix}`;
}

/**
 * Ranges no template may open, whatever it allows: loopback, "this network", link-local (cloud
 * metadata at 169.254.169.254), multicast and reserved. The control plane refuses them in a
 * template and the executor again when it sets a sandbox's routes.
 */
export const NEVER_ALLOWED: readonly Cidr4[] = ['0.0.0.0/8', '127.0.0.0/8', '169.254.0.0/16', '224.0.0.0/4', '240.0.0.0/4'].map((c) => parseCidr4(c) as Cidr4);
