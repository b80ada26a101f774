import { KilnError } from '../errors.js';

/** 400: a session policy would reach more than its template's allows. */
export class NetworkPolicyWidensError extends KilnError {
  /** `subject`: `session "ses_..."`, `function "name"` or `the new session`. */
  constructor(subject: string, problems: string[], data: Record<string, unknown> = {}) {
    super(
      'NetworkPolicyWidens',
      400,
      `network policy of ${subject} may only narrow its template's (widened by the tenant's egress grant, if an administrator gave one): ${problems.join('; ')}`,
      { ...data, problems },
    );
  }
}

/** 409: a session or function asks for an egress policy or secrets on a template whose network is not an egress policy. */
export class TemplateNotEgressError extends KilnError {
  constructor(template: string) {
    super(
      'NetworkPolicyUnsupported',
      409,
      `template "${template}" has no egress policy (its network is "none", "outbound" or the allowCidrs form), so it takes no per-session or per-function network policy or secrets; use a template with network "all" or { "allow": ... }`,
      { template },
    );
  }
}

/** 409: the session's template has no egress policy (network "none", "outbound" or the allowCidrs form). */
export class NetworkPolicyUnsupportedError extends KilnError {
  constructor(sessionId: string, template: string) {
    super(
      'NetworkPolicyUnsupported',
      409,
      `session "${sessionId}" runs template "${template}", whose network is not an egress policy; use a template with network "all" or { "allow": ... } to control egress per session`,
      { sessionId, template },
    );
  }
}
