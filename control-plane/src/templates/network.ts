import { NEVER_ALLOWED, overlaps, parseCidr4 } from '@kiln/executor/cidr';
import { egressPolicySchema, normalisePolicy, type EgressPolicy } from '@kiln/executor/egress-policy';
import { z } from 'zod';

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
 *
 * The egress forms (`"all"` and `{ "allow": {...}, "deny": {...} }`, executor/src/egress/policy.ts)
 * send the sandbox's traffic through Kiln's DNS and proxy instead, with per-session narrowing at
 * run time and an audit of every connection.
 */
export const networkSchema = z.union(
  [
    mode,
    z.literal('all'),
    z
      .object({
        mode,
        allowCidrs: z.array(allowCidr).max(64).default([]),
      })
      .strict()
      .refine((n) => n.mode === 'outbound' || n.allowCidrs.length === 0, { message: 'allowCidrs needs mode "outbound"', path: ['allowCidrs'] }),
    egressPolicySchema.options[2],
  ],
  {
    errorMap: () => ({
      message: 'expected "none", "outbound", { "mode": "outbound", "allowCidrs": ["198.51.100.0/24"] }, "all", or { "allow": { "domains": ["*.example.com"], "cidrs": [...], "ports": [443] }, "deny": {...} }',
    }),
  },
);

export type TemplateNetwork = z.infer<typeof networkSchema>;

/** What a sandbox of a template gets, whichever form its template uses. */
export function networkPolicy(network: TemplateNetwork): { outbound: boolean; allowCidrs: string[]; egress?: EgressPolicy } {
  if (network === 'all') return { outbound: false, allowCidrs: [], egress: normalisePolicy('all') };
  if (typeof network === 'string') return { outbound: network === 'outbound', allowCidrs: [] };
  if (!('mode' in network)) return { outbound: false, allowCidrs: [], egress: normalisePolicy(network) };
  return { outbound: network.mode === 'outbound', allowCidrs: network.mode === 'outbound' ? network.allowCidrs : [] };
}
