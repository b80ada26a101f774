import type { EgressPolicyResponse, EgressServer } from '@kiln/proto/executor/egress';
import { egressTotals } from '../egress/audit.js';
import { EgressPolicyError, parsePolicyJson } from '../egress/policy.js';
import type { SandboxEgress } from '../egress/sandbox-egress.js';
import type { EgressStep } from '../egress/step.js';
import { InvalidArgumentError } from '../errors.js';
import type { SandboxManager } from '../sandbox/manager.js';
import type { Rpc } from './rpc.js';

const MAX_AUDIT = 1000;

/** The Egress service: a sandbox's egress policy (read, changed at run time) and its audit records. */
export function egressService(rpc: Rpc, sandboxes: SandboxManager, egress: EgressStep): EgressServer {
  const of = (sandboxId: string): SandboxEgress => {
    sandboxes.get(sandboxId); // SandboxNotFound for an unknown or dead sandbox
    const e = egress.get(sandboxId);
    if (!e) throw new InvalidArgumentError(`sandbox ${sandboxId} has no egress policy (its template's network is "none" or "outbound")`, { sandboxId });
    return e;
  };
  const view = (e: SandboxEgress): EgressPolicyResponse => ({ templatePolicyJson: JSON.stringify(e.template), policyJson: JSON.stringify(e.policy) });
  return {
    setPolicy: rpc.unary((r) => {
      const e = of(r.sandboxId);
      try {
        e.setPolicy(parsePolicyJson(r.policyJson), r.ceilingJson ? parsePolicyJson(r.ceilingJson) : undefined);
      } catch (err) {
        if (err instanceof EgressPolicyError) throw new InvalidArgumentError(err.message, { sandboxId: r.sandboxId });
        throw err;
      }
      return view(e);
    }),
    getPolicy: rpc.unary((r) => view(of(r.sandboxId))),
    setSecrets: rpc.unary((r) => {
      const e = of(r.sandboxId);
      try {
        e.setSecrets(r.secrets);
      } catch (err) {
        if (err instanceof EgressPolicyError) throw new InvalidArgumentError(err.message, { sandboxId: r.sandboxId });
        throw err;
      }
      return {};
    }),
    totals: rpc.unary(() => ({ allowedTotal: egressTotals.allowed, refusedTotal: egressTotals.refused })),
    audit: rpc.unary((r) => {
      const e = of(r.sandboxId);
      return {
        records: e.audit.after(r.afterSeq, Math.min(r.limit || MAX_AUDIT, MAX_AUDIT)),
        dropped: e.audit.dropped,
        allowedTotal: e.audit.allowed,
        refusedTotal: e.audit.refused,
      };
    }),
  };
}
