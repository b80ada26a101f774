import type { EgressRecord } from '@kiln/proto/executor/egress';
import { normalisePolicy, widening, type EgressPolicy, type EgressPolicyInput } from '@kiln/executor/egress-policy';
import { caEnv } from '@kiln/executor/egress-ca-env';
import { ServiceUnavailableError } from '../errors.js';
import { DEFAULT_TENANT, type Principal } from '../tenancy/principal.js';
import { placeholderFor, type SecretStore } from './secrets.js';
import type { SessionService } from '../sessions/service.js';
import type { TemplateRegistry } from '../templates/registry.js';
import { networkPolicy } from '../templates/network.js';
import { EgressAgent } from './client.js';
import { ceilingOf, type EgressGrants } from './grants.js';
import { NetworkPolicyUnsupportedError, NetworkPolicyWidensError } from './errors.js';

export interface SessionNetworkView {
  sessionId: string;
  /** The template's policy: the most this session may be given. */
  template: EgressPolicy;
  /** The policy in force for new connections and DNS questions. */
  policy: EgressPolicy;
}

export interface EgressAuditView {
  sessionId: string;
  /** The executor's records (egress.proto EgressRecord) with the time as ISO 8601. */
  records: Array<Omit<EgressRecord, 'timeMs'> & { time: string }>;
  /** Records the executor's bounded buffer dropped before they were read. */
  dropped: number;
  allowedTotal: number;
  refusedTotal: number;
}

/**
 * A session's egress policy and audit. The executor that hosts the session's sandbox holds the
 * policy in force (it decides every connection), so it is read and changed there; tenancy is
 * the session service's (another tenant's session is as unknown as a missing one).
 */
export class EgressService {
  constructor(
    private readonly sessions: Pick<SessionService, 'open' | 'store'>,
    private readonly templates: Pick<TemplateRegistry, 'get'>,
    private readonly secrets?: SecretStore,
    private readonly grants?: EgressGrants,
  ) {}

  /**
   * Binds tenant secrets to a session: its executor's proxy gets the values (and puts them into
   * plain-HTTP requests to their hosts only); the session's environment gets a placeholder per
   * secret (`KILN_SECRET_<NAME>`), for processes started from now on.
   */
  async bindSecrets(sessionId: string, names: readonly string[], who: Principal): Promise<{ sessionId: string; env: Record<string, string> }> {
    const { agent, tenant } = await this.open(sessionId, who);
    if (!this.secrets) throw new ServiceUnavailableError('egress secrets', 'this deployment has no secret store');
    const opened = await this.secrets.open(tenant, [...new Set(names)]);
    const env: Record<string, string> = {};
    const bound = opened.map((s) => {
      const p = placeholderFor(s.name);
      env[p.env] = p.placeholder;
      return { placeholder: p.placeholder, value: s.value, hosts: s.hosts, header: s.header, format: s.format, https: s.https };
    });
    await agent.egress.setSecrets(agent.sandboxId, bound);
    if (opened.some((s) => s.https)) Object.assign(env, caEnv());
    const record = await this.sessions.store.get(sessionId);
    if (record) await this.sessions.store.put({ ...record, env: { ...record.env, ...env } });
    return { sessionId, env };
  }

  async get(sessionId: string, who: Principal): Promise<SessionNetworkView> {
    const { agent } = await this.open(sessionId, who);
    const r = await agent.egress.getPolicy(agent.sandboxId);
    return { sessionId, template: JSON.parse(r.templatePolicyJson) as EgressPolicy, policy: JSON.parse(r.policyJson) as EgressPolicy };
  }

  /**
   * Replaces the session's policy; it must lie within the template's, widened by the tenant's
   * egress grant if it has one (400 NetworkPolicyWidens). The ceiling goes along each time, so a
   * grant given or withdrawn since applies from this change on.
   */
  async put(sessionId: string, input: EgressPolicyInput, who: Principal): Promise<SessionNetworkView> {
    const { agent, template, tenant } = await this.open(sessionId, who);
    const policy = normalisePolicy(input);
    const ceiling = ceilingOf(template, await this.grants?.get(tenant));
    const wider = widening(ceiling, policy);
    if (wider.length) throw new NetworkPolicyWidensError(`session "${sessionId}"`, wider, { sessionId });
    const r = await agent.egress.setPolicy(agent.sandboxId, JSON.stringify(policy), JSON.stringify(ceiling));
    return { sessionId, template: JSON.parse(r.templatePolicyJson) as EgressPolicy, policy: JSON.parse(r.policyJson) as EgressPolicy };
  }

  async audit(sessionId: string, who: Principal, afterSeq: number, limit: number): Promise<EgressAuditView> {
    const { agent } = await this.open(sessionId, who);
    const r = await agent.egress.audit(agent.sandboxId, afterSeq, limit);
    return {
      sessionId,
      records: r.records.map(({ timeMs, ...e }) => ({ time: new Date(timeMs).toISOString(), ...e })),
      dropped: r.dropped,
      allowedTotal: r.allowedTotal,
      refusedTotal: r.refusedTotal,
    };
  }

  private async open(sessionId: string, who: Principal): Promise<{ agent: { egress: EgressAgent; sandboxId: string }; template: EgressPolicy; tenant: string }> {
    const { record, agent } = await this.sessions.open(sessionId, who);
    const template = networkPolicy(this.templates.get(record.template).network).egress;
    if (!template) throw new NetworkPolicyUnsupportedError(sessionId, record.template);
    return { agent: { egress: new EgressAgent(agent.agent), sandboxId: agent.sandboxId }, template, tenant: record.tenant ?? DEFAULT_TENANT };
  }
}
