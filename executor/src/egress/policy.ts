import { z } from 'zod';
import { NEVER_ALLOWED, overlaps, parseCidr4, type Cidr4 } from '../sandbox/cidr.js';

/**
 * Egress policy: what a sandbox that leaves through Kiln's egress proxy may reach. One module
 * for both sides: the control plane validates templates and `PUT .../network` with
 * {@link egressPolicySchema}; the executor parses the normalised JSON again (the agent port is an
 * API of its own) and decides every DNS question and connection with {@link decide}.
 */

/** Ports a policy allows when it names none. */
export const DEFAULT_PORTS = [80, 443];
/** One listener per allowed port in the sandbox's namespace: keep the count small. */
export const MAX_PORTS = 32;

/**
 * Ranges that names may not resolve to and IP literals may not reach unless a CIDR rule lists
 * them (`all` included): private, CGNAT, benchmarking, IETF, plus what no rule can open.
 */
const PRIVATE = ['10.0.0.0/8', '100.64.0.0/10', '172.16.0.0/12', '192.0.0.0/24', '192.168.0.0/16', '198.18.0.0/15'].map((c) => parseCidr4(c) as Cidr4);

export interface EgressRules {
  /** `example.test` (that name only) or `*.example.test` (every name below it, not itself). */
  domains: string[];
  /** IPv4 CIDRs. */
  cidrs: string[];
  ports: number[];
}

/** The normalised form: what travels to the executor and what GET answers. */
export interface EgressPolicy {
  allow: EgressRules & { all: boolean };
  deny: EgressRules;
}

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

function domainProblem(text: string): string | undefined {
  const name = text.startsWith('*.') ? text.slice(2) : text;
  if (name.length === 0 || name.length > 253) return `"${text}" is not a domain name (1-253 characters)`;
  if (!name.split('.').every((l) => LABEL.test(l))) return `"${text}" is not a domain name: use lower-case labels of letters, digits and hyphens, optionally after "*." (e.g. "*.example.com")`;
  return undefined;
}

/** A domain pattern: `example.com` or `*.example.com`, lower-cased, without a trailing dot. */
export const domainSchema = z
  .string()
  .transform((s) => s.toLowerCase().replace(/\.$/, ''))
  .superRefine((s, ctx) => {
    const problem = domainProblem(s);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

const cidr = z.string().superRefine((text, ctx) => {
  const c = parseCidr4(text);
  if (!c) ctx.addIssue({ code: 'custom', message: `"${text}" is not an IPv4 network in CIDR form with no host bits set, such as 198.51.100.0/24` });
  else if (NEVER_ALLOWED.some((n) => overlaps(n, c))) ctx.addIssue({ code: 'custom', message: `${text} overlaps loopback, link-local (metadata), multicast or reserved addresses, which a sandbox never reaches` });
});

const port = z.number().int().min(1).max(65535);

const rules = {
  domains: z.array(domainSchema).max(256).optional(),
  cidrs: z.array(cidr).max(64).optional(),
  ports: z.array(port).max(MAX_PORTS).optional(),
};

const policyObject = z
  .object({
    allow: z.object({ all: z.boolean().optional(), ...rules }).strict().optional(),
    deny: z.object(rules).strict().optional(),
  })
  .strict();

/**
 * What a template's `network` or a session's policy may say: `"none"`, `"all"` (every public
 * name and address on ports 80 and 443; never private, link-local or the host unless a CIDR
 * rule lists it), or `{ allow: { all?, domains, cidrs, ports }, deny: { domains, cidrs, ports } }`.
 */
export const egressPolicySchema = z.union([z.literal('none'), z.literal('all'), policyObject]);
export type EgressPolicyInput = z.input<typeof egressPolicySchema>;

const uniq = <T>(xs: readonly T[]): T[] => [...new Set(xs)];

export function normalisePolicy(input: z.output<typeof egressPolicySchema>): EgressPolicy {
  if (input === 'none') return { allow: { all: false, domains: [], cidrs: [], ports: [] }, deny: { domains: [], cidrs: [], ports: [] } };
  if (input === 'all') return { allow: { all: true, domains: [], cidrs: [], ports: [...DEFAULT_PORTS] }, deny: { domains: [], cidrs: [], ports: [] } };
  return {
    allow: { all: input.allow?.all ?? false, domains: uniq(input.allow?.domains ?? []), cidrs: uniq(input.allow?.cidrs ?? []), ports: uniq(input.allow?.ports ?? DEFAULT_PORTS).sort((a, b) => a - b) },
    deny: { domains: uniq(input.deny?.domains ?? []), cidrs: uniq(input.deny?.cidrs ?? []), ports: uniq(input.deny?.ports ?? []) },
  };
}

export class EgressPolicyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EgressPolicyError';
  }
}

/** Parses policy JSON from the wire (the executor's own guard); throws EgressPolicyError. */
export function parsePolicyJson(text: string): EgressPolicy {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new EgressPolicyError('egress policy is not JSON');
  }
  const parsed = egressPolicySchema.safeParse(raw);
  if (!parsed.success) throw new EgressPolicyError(`egress policy: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  return normalisePolicy(parsed.data);
}

/** True when `pattern` (exact or `*.`) matches every name `inner` (exact or `*.`) matches. */
function covers(pattern: string, inner: string): boolean {
  if (!pattern.startsWith('*.')) return pattern === inner;
  const base = pattern.slice(1); // ".example.test"
  const name = inner.startsWith('*.') ? inner.slice(1) : `.${inner}`;
  return name.endsWith(base) && (name !== base || inner.startsWith('*.'));
}

export function domainMatches(pattern: string, name: string): boolean {
  return covers(pattern, name);
}

const contains = (outer: Cidr4, inner: Cidr4): boolean => outer.prefix <= inner.prefix && overlaps(outer, inner);

/**
 * Where `inner` would let a sandbox reach more than `outer` (a session policy against its
 * template's), as messages; empty when it lies within. Deny rules of `outer` need no check:
 * connections must pass both policies.
 */
export function widening(outer: EgressPolicy, inner: EgressPolicy): string[] {
  const out: string[] = [];
  if (inner.allow.all && !outer.allow.all) out.push('allow.all: the template does not allow every public destination');
  for (const d of inner.allow.domains) if (!outer.allow.all && !outer.allow.domains.some((p) => covers(p, d))) out.push(`allow.domains: "${d}" is not within the template's domains`);
  for (const text of inner.allow.cidrs) {
    const c = parseCidr4(text) as Cidr4;
    const inTemplate = outer.allow.cidrs.some((o) => contains(parseCidr4(o) as Cidr4, c));
    if (!inTemplate && !(outer.allow.all && !PRIVATE.some((p) => overlaps(p, c)))) out.push(`allow.cidrs: ${text} is not within the template's networks`);
  }
  for (const p of inner.allow.ports) if (!outer.allow.ports.includes(p)) out.push(`allow.ports: ${p} is not one of the template's ports (${outer.allow.ports.join(', ') || 'none'})`);
  return out;
}

export interface Verdict {
  allowed: boolean;
  /** The rule that decided, e.g. `allow.domains:*.example.test` or `default` (nothing allowed it). */
  rule: string;
}

const ipToNumber = (ip: string): number | undefined => parseCidr4(`${ip}/32`)?.base;

function inCidrs(ip: number, cidrs: readonly string[]): string | undefined {
  return cidrs.find((c) => overlaps(parseCidr4(c) as Cidr4, { base: ip, prefix: 32 }));
}

/** A name: is it allowed on this port, or (DNS, no port yet) at all, before any address is known? */
export function decideName(p: EgressPolicy, name: string, port?: number): Verdict {
  if (port !== undefined && p.deny.ports.includes(port)) return { allowed: false, rule: `deny.ports:${port}` };
  if (port !== undefined && !p.allow.ports.includes(port)) return { allowed: false, rule: 'allow.ports' };
  const denied = p.deny.domains.find((d) => covers(d, name));
  if (denied) return { allowed: false, rule: `deny.domains:${denied}` };
  const allowed = p.allow.domains.find((d) => covers(d, name));
  if (allowed) return { allowed: true, rule: `allow.domains:${allowed}` };
  if (p.allow.all) return { allowed: true, rule: 'allow.all' };
  return { allowed: false, rule: 'default' };
}

/**
 * An address: may the sandbox reach it (`literal`: it connected to the address itself; else it
 * is what an allowed name resolved to)? The host's own addresses are never reachable.
 */
export function decideAddress(p: EgressPolicy, ip: string, port: number, literal: boolean, hostAddresses: ReadonlySet<string>): Verdict {
  const n = ipToNumber(ip);
  if (n === undefined) return { allowed: false, rule: 'ipv4-only' };
  if (p.deny.ports.includes(port)) return { allowed: false, rule: `deny.ports:${port}` };
  if (!p.allow.ports.includes(port)) return { allowed: false, rule: 'allow.ports' };
  if (hostAddresses.has(ip) || NEVER_ALLOWED.some((c) => overlaps(c, { base: n, prefix: 32 }))) return { allowed: false, rule: 'never' };
  const denied = inCidrs(n, p.deny.cidrs);
  if (denied) return { allowed: false, rule: `deny.cidrs:${denied}` };
  const listed = inCidrs(n, p.allow.cidrs);
  if (listed) return { allowed: true, rule: `allow.cidrs:${listed}` };
  if (PRIVATE.some((c) => overlaps(c, { base: n, prefix: 32 }))) return { allowed: false, rule: 'private' };
  if (literal) return p.allow.all ? { allowed: true, rule: 'allow.all' } : { allowed: false, rule: 'default' };
  return { allowed: true, rule: 'public' };
}

/** Both policies must agree (template, then session); the first refusal names its rule. */
export function decideBoth(policies: readonly EgressPolicy[], decide: (p: EgressPolicy) => Verdict): Verdict {
  let last: Verdict = { allowed: false, rule: 'default' };
  for (const [i, p] of policies.entries()) {
    last = decide(p);
    if (!last.allowed) return i === 0 && policies.length > 1 ? { allowed: false, rule: `template ${last.rule}` } : last;
  }
  return last;
}
