import { normalisePolicy, type EgressPolicy, type EgressPolicyInput } from '@kiln/executor/egress-policy';
import type { Redis } from 'ioredis';
import type { Keys } from '../store/keys.js';

/**
 * Tenants' egress grants: what an administrator lets one tenant's sessions and functions reach
 * beyond their template's policy. The tenant permission model: a tenant key may only narrow a
 * template's policy, unless an administrator stored a grant for its tenant; then a session or
 * function of that tenant may ask for anything within the template's policy and the grant
 * together ({@link ceilingOf}). No grant, no widening; an administrator's own sessions follow
 * the same rule (the administrator sets grants, it does not bypass them).
 */
export class EgressGrants {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  async get(tenant: string): Promise<EgressPolicy | undefined> {
    const raw = await this.redis.get(this.keys.egressGrant(tenant));
    return raw ? (JSON.parse(raw) as EgressPolicy) : undefined;
  }

  async put(tenant: string, input: EgressPolicyInput): Promise<EgressPolicy> {
    const policy = normalisePolicy(input);
    await this.redis.set(this.keys.egressGrant(tenant), JSON.stringify(policy));
    return policy;
  }

  /** False when the tenant had none. */
  async delete(tenant: string): Promise<boolean> {
    return (await this.redis.del(this.keys.egressGrant(tenant))) > 0;
  }
}

const uniq = <T>(xs: readonly T[]): T[] => [...new Set(xs)];

/**
 * The most a tenant's sandbox of a template may reach: the template's allow lists joined with
 * the grant's. The template's deny rules stay (a grant lifts no denial), and so do its ports:
 * the sandbox's namespace has one listener per template port, made when it booted, so a port
 * the template lacks could not be opened later anyway (the grant's ports are ignored).
 */
export function ceilingOf(template: EgressPolicy, grant: EgressPolicy | undefined): EgressPolicy {
  if (!grant) return template;
  return {
    allow: {
      all: template.allow.all || grant.allow.all,
      domains: uniq([...template.allow.domains, ...grant.allow.domains]),
      cidrs: uniq([...template.allow.cidrs, ...grant.allow.cidrs]),
      ports: template.allow.ports,
    },
    deny: template.deny,
  };
}
