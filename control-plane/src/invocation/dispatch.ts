import { DEFAULT_TENANT } from '../tenancy/principal.js';
import { InvokeStatus, type InvokeResponse } from '@kiln/proto/executor/invoke';
import type { AgentPool } from '../agent/client.js';
import { SandboxLostError } from '../agent/errors.js';
import type { LeaseCache } from '../scheduler/lease-cache.js';
import type { Lease, Scheduler } from '../scheduler/scheduler.js';
import type { TemplateRegistry } from '../templates/registry.js';
import { KilnError } from '../errors.js';
import type { EgressPlacement } from '../egress/placement.js';
import type { EgressPolicy } from '@kiln/executor/egress-policy';
import type { CodeFile, ExecutionRecord, FunctionPayload, InvocationJob } from './contract.js';
import { invokeRequest, outcomeOf } from './request.js';
import type { ChunkListener } from './stream.js';

/** How long a job may wait for a sandbox before it fails with NoCapacity. */
const LEASE_WAIT_MS = 30_000;
/** Extra time the control plane gives the executor beyond the handler's own timeout. */
const RPC_MARGIN_MS = 5_000;
/**
 * Places on another sandbox after SandboxLost: the executor had no such sandbox (it died after
 * its last answer, or the executor restarted), so the handler did not run and placing the job
 * again keeps a synchronous call at most once. Bounded so that a broken executor cannot loop.
 */
const LOST_SANDBOX_RETRIES = 2;

/**
 * Runs one attempt of a job on a sandbox: lease one (hot, warm or cold), invoke over gRPC,
 * release it (or forget a sandbox that died). Platform failures throw KilnErrors; handler
 * failures are records, not exceptions. Finished leases go through the LeaseCache, so this
 * replica's next job of the same function usually takes the sandbox without a trip to Redis.
 */
export class Dispatcher {
  constructor(
    private readonly scheduler: Scheduler,
    private readonly agents: AgentPool,
    private readonly templates: TemplateRegistry,
    private readonly leases: LeaseCache,
    private readonly packages: { load(key: string): Promise<CodeFile[] | undefined> },
    /** Puts a function's own egress policy and secrets on each sandbox it leases (egress/placement.ts). */
    private readonly egress?: Pick<EgressPlacement, 'apply'>,
  ) {}

  /**
   * A function with its own egress settings has them put on the sandbox at every lease, hot ones
   * included: a sandbox only ever serves one function configuration (hot lists are per function
   * key, evicted ones are destroyed, never made warm again), but the tenant's grant or a secret
   * may have changed since the last invocation. A failure destroys the sandbox: its policy may
   * be half set.
   */
  private async applyEgress(lease: Lease, job: InvocationJob): Promise<InvocationJob> {
    const e = job.function.egress;
    if (!e) return job;
    try {
      if (!this.egress) throw new KilnError('EgressUnavailable', 500, 'this replica cannot apply function egress settings');
      const plan = { ...(e.policyJson ? { policy: JSON.parse(e.policyJson) as EgressPolicy } : {}), secrets: e.secrets };
      // Placeholders derive from the function key, so the environment is the same at every lease.
      const env = await this.egress.apply(this.agents.get(lease.executor), lease.sandboxId, job.tenant ?? DEFAULT_TENANT, lease.template, plan, `function "${job.function.name}"`, job.function.key);
      return { ...job, function: { ...job.function, env: { ...job.function.env, ...env } } };
    } catch (err) {
      await this.scheduler.destroy(lease);
      throw err;
    }
  }

  /** One attempt; a `stream` job goes over InvokeStream and hands its body's chunks to `onChunk` as they come. */
  async run(job: InvocationJob, startedAt = Date.now(), onChunk?: ChunkListener): Promise<ExecutionRecord> {
    const template = this.templates.get(job.template);
    const fn = job.function;
    const t0 = performance.now();
    // Read before any lease (a cache hit after a replica's first invocation of a version), so a
    // missing package fails the job without taking a sandbox from the pool.
    const files = await this.code(fn);
    let lost = 0;
    let lease: Lease;
    let res: InvokeResponse;
    let scheduleMs: number;
    for (;;) {
      // A cached lease must outlive this invocation's RPC deadline; a new one gets the margin twice.
      lease =
        this.leases.take(template.name, fn.key, job.timeoutMs + RPC_MARGIN_MS) ??
        (await this.scheduler.acquire(template, fn.runner, fn.key, LEASE_WAIT_MS, job.timeoutMs + RPC_MARGIN_MS * 2));
      // Until the sandbox that ran it was leased, lost ones included.
      scheduleMs = performance.now() - t0;
      const placed = await this.applyEgress(lease, job);
      try {
        res = await this.invoke(lease, placed, lease.startType !== 'hot' ? files : undefined, onChunk);
        if (res.status === InvokeStatus.INVOKE_STATUS_NEEDS_FUNCTION) res = await this.invoke(lease, placed, files, onChunk);
        break;
      } catch (err) {
        if (err instanceof SandboxLostError) {
          await this.scheduler.forget(lease.template, lease.sandboxId);
          if (lost++ < LOST_SANDBOX_RETRIES) continue;
        } else await this.scheduler.destroy(lease);
        // Already the control plane's error (agent/errors.ts): ExecutorLost when the executor went away.
        throw err;
      }
    }
    if (res.sandboxAlive) this.leases.park(lease, fn.key);
    else await this.scheduler.forget(lease.template, lease.sandboxId);
    const totalMs = Date.now() - job.submittedAt;
    return {
      id: job.id,
      ...outcomeOf(res),
      logs: res.logs,
      ...(res.logsTruncated ? { logsTruncated: true } : {}),
      durationMs: res.durationMs,
      startType: lease.startType,
      timings: { queuedMs: Math.max(0, startedAt - job.submittedAt), scheduleMs, initMs: res.initMs, handlerMs: res.durationMs, totalMs },
      maxMemoryMB: res.maxMemoryMb,
      template: job.template,
      tenant: job.tenant ?? DEFAULT_TENANT,
      createdAt: new Date(job.submittedAt).toISOString(),
      finishedAt: new Date().toISOString(),
    };
  }

  /** `files` goes along for a sandbox that must load the function (not a hot one). */
  private invoke(lease: Lease, job: InvocationJob, files: CodeFile[] | undefined, onChunk?: ChunkListener): Promise<InvokeResponse> {
    const agent = this.agents.get(lease.executor);
    const req = invokeRequest(lease.sandboxId, job.id, job.function, job.event, job.timeoutMs, files, job.tenant, job);
    if (!job.stream || !onChunk) return agent.invoke(req, job.timeoutMs + RPC_MARGIN_MS);
    const version = job.function.version;
    return agent.invokeStream(req, job.timeoutMs + RPC_MARGIN_MS, (data, contentType) => onChunk({ id: job.id, version, data, ...(contentType ? { contentType } : {}) }));
  }

  /** The job's code: inline (ad-hoc executions), or the function version's stored package. */
  private async code(fn: FunctionPayload): Promise<CodeFile[]> {
    if (fn.files) return fn.files;
    const files = fn.code === undefined ? undefined : await this.packages.load(fn.code);
    if (!files) throw new KilnError('CodeMissing', 500, `the code package of function "${fn.name}" version ${fn.version} is missing from storage`, { functionName: fn.name });
    return files;
  }
}
