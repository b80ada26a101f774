import { KilnError } from '../errors.js';

/** 400: a session policy would reach more than its template's allows. */
export class NetworkPolicyWidensError extends KilnError {
  constructor(sessionId: string, problems: string[]) {
    super('NetworkPolicyWidens', 400, `network policy of session "${sessionId}" may only narrow its template's: ${problems.join('; ')}`, { sessionId, problems });
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
