import { z } from 'zod';

/**
 * Addresses no template may open, whatever it allows: loopback, "this network", link-local
 * (cloud metadata at 169.254.169.254), multicast and reserved. The executor refuses them too, and
 * always refuses its host's own addresses (executor/src/sandbox/network.ts).
 */
const NEVER_ALLOWED: Array<[number, number]> = [
  [0x00000000, 8],
  [0x7f000000, 8],
  [0xa9fe0000, 16],
  [0xe0000000, 4],
  [0xf0000000, 4],
];

const OCTET = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** `a.b.c.d/n` → [base, prefix], strictly: no leading zeros, prefix 0-32, no host bits set. */
function parseCidr4(text: string): [number, number] | undefined {
  const m = /^([0-9.]+)\/(0|[1-9]\d?)$/.exec(text);
  if (!m) return undefined;
  const octets = (m[1] as string).split('.');
  const prefix = Number(m[2]);
  if (octets.length !== 4 || !octets.every((o) => OCTET.test(o)) || prefix > 32) return undefined;
  const base = octets.reduce((n, o) => n * 256 + Number(o), 0);
  return base % 2 ** (32 - prefix) === 0 ? [base, prefix] : undefined;
}

function overlaps([a, ap]: [number, number], [b, bp]: [number, number]): boolean {
  const size = 2 ** (32 - Math.min(ap, bp));
  return Math.floor(a / size) === Math.floor(b / size);
}

const allowCidr = z.string().superRefine((text, ctx) => {
  const cidr = parseCidr4(text);
  if (!cidr)
    ctx.addIssue({
      code: 'custom',
      message: `"${text}" is not an IPv4 network in CIDR form with no host bits set, such as 198.51.100.0/24 (outbound sandboxes have no IPv6)`,
    });
  else if (NEVER_ALLOWED.some((n) => overlaps(n, cidr)))
    ctx.addIssue({
      code: 'custom',
      message: `${text} overlaps loopback, link-local (metadata), multicast or reserved addresses, which a sandbox never reaches`,
    });
});

const mode = z.enum(['none', 'outbound']);

/**
 * A template's network: `"none"` (loopback only), `"outbound"` (the internet through the
 * sandbox's own NAT, no private, link-local or host addresses), or the object form, which can
 * also open private ranges: `{ "mode": "outbound", "allowCidrs": ["10.20.0.0/16"] }`. The object
 * is where a fuller egress policy will grow; unknown keys are refused so that nothing a later
 * version adds is silently ignored by this one.
 */
export const networkSchema = z.union(
  [
    mode,
    z
      .object({
        mode,
        allowCidrs: z.array(allowCidr).max(64).default([]),
      })
      .strict()
      .refine((n) => n.mode === 'outbound' || n.allowCidrs.length === 0, { message: 'allowCidrs needs mode "outbound"', path: ['allowCidrs'] }),
  ],
  { errorMap: () => ({ message: 'expected "none", "outbound" or { "mode": "outbound", "allowCidrs": ["198.51.100.0/24"] }' }) },
);

export type TemplateNetwork = z.infer<typeof networkSchema>;

/** What a sandbox of a template gets, whichever form its template uses. */
export function networkPolicy(network: TemplateNetwork): { outbound: boolean; allowCidrs: string[] } {
  if (typeof network === 'string') return { outbound: network === 'outbound', allowCidrs: [] };
  return { outbound: network.mode === 'outbound', allowCidrs: network.mode === 'outbound' ? network.allowCidrs : [] };
}
