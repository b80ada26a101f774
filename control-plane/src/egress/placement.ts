import { normalisePolicy, widening, type EgressPolicy, type EgressPolicyInput } from '@kiln/executor/egress-policy';
import { caEnv } from '@kiln/executor/egress-ca-env';
import type { Agent } from '../agent/client.js';
import type { TemplateRegistry } from '../templates/registry.js';
import { networkPolicy } from '../templates/network.js';
import { EgressAgent } from './client.js';
import { NetworkPolicyWidensError, TemplateNotEgressError } from './errors.js';
import { ceilingOf, type EgressGrants } from './grants.js';
import { placeholderFor, SecretNotFoundError, type SecretStore } from './secrets.js';

/** What a session (at create) or a function (in its configuration) asks of its sandbox's egress. */
export interface EgressRequest {
  /** A policy as the API takes it (egressPolicySchema's output). */
  network?: EgressPolicyInput | undefined;
  /** Names of the tenant's secrets to bind (egress/secrets.ts). */
  secrets?: string[] | undefined;
}

/** A request checked against its template and tenant: what is applied to each sandbox. */
export interface EgressPlan {
  policy?: EgressPolicy;
  secrets: string[];
}

/**
 * Puts a session's or function's own egress policy and secrets on the sandbox it was given.
 * Checked twice: when asked (before any sandbox is taken, so a bad request costs no sandbox) and
 * when applied (the tenant's grant may have been withdrawn since a function was configured).
 */
export class EgressPlacement {
  constructor(
    private readonly templates: Pick<TemplateRegistry, 'get'>,
    private readonly grants: EgressGrants,
    private readonly secrets?: SecretStore,
  ) {}

  /** Undefined when the request asks nothing; throws 409/400/404 KilnErrors for what cannot be. */
  async plan(tenant: string, templateName: string, req: EgressRequest, subject: string): Promise<EgressPlan | undefined> {
    const names = [...new Set(req.secrets ?? [])];
    if (req.network === undefined && names.length === 0) return undefined;
    const template = this.templatePolicy(templateName);
    const plan: EgressPlan = { secrets: names };
    if (req.network !== undefined) {
      plan.policy = normalisePolicy(req.network);
      await this.check(tenant, template, plan.policy, subject);
    }
    if (names.length) {
      const known = await this.store().names(tenant);
      const missing = names.find((n) => !known.has(n));
      if (missing) throw new SecretNotFoundError(missing);
    }
    return plan;
  }

  /**
   * Sets the plan on a sandbox: the policy (with the widened ceiling when the tenant's grant
   * widens the template's) and the secrets, whose placeholders come back as environment
   * variables. `placeholderSeed`: a function's key, so every sandbox of a function configuration
   * sees the same placeholders (they are in its environment, which is part of the invoke); a
   * session's are random.
   */
  async apply(agent: Agent, sandboxId: string, tenant: string, templateName: string, plan: EgressPlan, subject: string, placeholderSeed?: string): Promise<Record<string, string>> {
    const egress = new EgressAgent(agent);
    if (plan.policy) {
      const template = this.templatePolicy(templateName);
      const ceiling = await this.check(tenant, template, plan.policy, subject);
      await egress.setPolicy(sandboxId, JSON.stringify(plan.policy), ceiling === template ? '' : JSON.stringify(ceiling));
    }
    const env: Record<string, string> = {};
    if (plan.secrets.length) {
      const opened = await this.store().open(tenant, plan.secrets);
      const bound = opened.map((s) => {
        const p = placeholderFor(s.name, placeholderSeed);
        env[p.env] = p.placeholder;
        return { placeholder: p.placeholder, value: s.value, hosts: s.hosts, header: s.header, format: s.format, https: s.https };
      });
      await egress.setSecrets(sandboxId, bound);
      if (opened.some((s) => s.https)) Object.assign(env, caEnv());
    }
    return env;
  }

  /** The ceiling for the tenant on the template; throws when `policy` goes beyond it. */
  async check(tenant: string, template: EgressPolicy, policy: EgressPolicy, subject: string): Promise<EgressPolicy> {
    const ceiling = ceilingOf(template, await this.grants.get(tenant));
    const wider = widening(ceiling, policy);
    if (wider.length) throw new NetworkPolicyWidensError(subject, wider);
    return ceiling;
  }

  private templatePolicy(name: string): EgressPolicy {
    const p = networkPolicy(this.templates.get(name).network).egress;
    if (!p) throw new TemplateNotEgressError(name);
    return p;
  }

  private store(): SecretStore {
    if (!this.secrets) throw new SecretNotFoundError('(this deployment has no secret store)');
    return this.secrets;
  }
}
