import { credentials, type ServiceError } from '@grpc/grpc-js';
import { EgressClient, type EgressAuditResponse, type EgressPolicyResponse, type EgressSecret, type EgressTotalsResponse } from '@kiln/proto/executor/egress';
import type { Agent } from '../agent/client.js';
import { executorError } from '../agent/errors.js';

/** The Egress service of one executor, on the agent's shared channel and with its token. */
export class EgressAgent {
  private readonly client: InstanceType<typeof EgressClient>;

  constructor(private readonly agent: Agent) {
    this.client = new EgressClient(agent.executor.address, credentials.createInsecure(), { channelOverride: agent.grpc.sandboxes.getChannel() });
  }

  /** `ceilingJson`: a widened ceiling in place of the template's ('' keeps the sandbox's). */
  setPolicy(sandboxId: string, policyJson: string, ceilingJson = ''): Promise<EgressPolicyResponse> {
    return this.call((cb, deadline) => this.client.setPolicy({ sandboxId, policyJson, ceilingJson }, this.agent.grpc.metadata, { deadline }, cb));
  }

  getPolicy(sandboxId: string): Promise<EgressPolicyResponse> {
    return this.call((cb, deadline) => this.client.getPolicy({ sandboxId }, this.agent.grpc.metadata, { deadline }, cb));
  }

  audit(sandboxId: string, afterSeq: number, limit: number): Promise<EgressAuditResponse> {
    return this.call((cb, deadline) => this.client.audit({ sandboxId, afterSeq, limit }, this.agent.grpc.metadata, { deadline }, cb));
  }

  setSecrets(sandboxId: string, secrets: EgressSecret[]): Promise<unknown> {
    return this.call((cb, deadline) => this.client.setSecrets({ sandboxId, secrets }, this.agent.grpc.metadata, { deadline }, cb));
  }

  totals(timeoutMs = 2_000): Promise<EgressTotalsResponse> {
    return this.call((cb, deadline) => this.client.totals({}, this.agent.grpc.metadata, { deadline }, cb), timeoutMs);
  }

  private call<T>(fn: (cb: (err: ServiceError | null, res: T) => void, deadline: number) => void, timeoutMs = 5_000): Promise<T> {
    return new Promise<T>((resolve, reject) => fn((err, res) => (err ? reject(executorError(err, this.agent.executor.id)) : resolve(res)), Date.now() + timeoutMs));
  }
}
