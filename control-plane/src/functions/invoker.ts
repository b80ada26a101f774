import { randomUUID } from 'node:crypto';
import { KilnError } from '../errors.js';
import type { ExecutionRecord, InvocationJob } from '../invocation/contract.js';
import { runnerOf } from '../invocation/languages.js';
import { checkEventDepth, functionKey } from '../invocation/request.js';
import { submissionId, type Submission, type Submitter } from '../invocation/submit.js';
import type { DeadLetterStore } from './deadletters.js';
import { DeadLetterNotFoundError, InvalidPayloadError, PayloadTooLargeError } from './errors.js';
import type { FunctionService } from './service.js';
import type { Principal } from '../tenancy/principal.js';
import type { DeadLetter, FunctionRef, FunctionVersionRecord } from './types.js';
import { invokedFunctionArn } from './arn.js';
import type { ChunkListener } from '../invocation/stream.js';
import type { FunctionExtras } from './settings.js';
import type { EventInvokeConfigs } from './event-invoke.js';

export type InvocationType = 'RequestResponse' | 'Event' | 'DryRun';

/** Lambda's payload limits: 6 MB for synchronous invocations, 1 MB for asynchronous ones. */
export const SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024;
export const ASYNC_PAYLOAD_BYTES = 1024 * 1024;

export interface Invocation {
  id: string;
  function: FunctionVersionRecord;
  /** Set for RequestResponse: the finished execution. */
  record?: ExecutionRecord;
}

/**
 * Invokes function versions through the one invocation path; async failures end as dead letters.
 * Every method takes the caller and finds the function as FunctionService does (its tenant's
 * names only). An invocation belongs to the function's tenant, whoever invoked it (an
 * administrator invoking a tenant's function runs it as that tenant's).
 */
export class FunctionInvoker {
  constructor(
    private readonly functions: FunctionService,
    private readonly submitter: Submitter,
    private readonly deadLetters: DeadLetterStore,
    private readonly extras?: Pick<FunctionExtras, 'admitJob' | 'releaseJob'>,
    private readonly eventConfigs?: Pick<EventInvokeConfigs, 'forInvocation'>,
  ) {}

  /**
   * Invokes a function with its event as JSON text. `idempotencyKey` (Event only) makes retried
   * submissions of one event one invocation: the first one's id comes back and it runs once.
   * `onChunk` (RequestResponse only) streams the response: its chunks come as the handler writes
   * them, and the record that follows carries no result (invocation/stream.ts).
   */
  async invoke(who: Principal, ref: FunctionRef, qualifier: string | undefined, payload: string, type: InvocationType, idempotencyKey?: string, clientContext?: string, onChunk?: ChunkListener, destinationDepth?: number): Promise<Invocation> {
    const bytes = Buffer.byteLength(payload);
    const max = type === 'Event' ? ASYNC_PAYLOAD_BYTES : SYNC_PAYLOAD_BYTES;
    if (bytes > max) throw new PayloadTooLargeError(bytes, max, type === 'Event' ? 'an asynchronous' : 'a synchronous');
    const event = payload.trim() === '' ? '{}' : payload;
    try {
      JSON.parse(event);
    } catch (err) {
      throw new InvalidPayloadError((err as Error).message);
    }
    checkEventDepth(event);
    // The one Redis read of a hot invocation (two by alias): the record, found under the caller's
    // tenant only. An alias with weighted routing picks the version here, per invocation.
    const { record: fn, alias } = await this.functions.resolve(who, ref, qualifier, true);
    // The Submitter scopes the key within the job's tenant too; the id it gives is known here
    // already, so that the reserved concurrency counts the job under the id it will settle with.
    const idempotency = idempotencyKey && type === 'Event' ? { scope: `function:${fn.name}:${alias ? `alias:${alias.name}` : fn.version}`, key: idempotencyKey } : undefined;
    const id = idempotency ? submissionId(fn.tenant, idempotency) : randomUUID();
    if (type === 'DryRun') return { id, function: fn };
    const stream = onChunk !== undefined && type === 'RequestResponse';
    // An async invocation's retries and maximum age: its qualifier's event invoke config, else the function's retries.
    const eic = type === 'Event' ? await this.eventConfigs?.forInvocation(fn.tenant, fn.name, qualifier) : undefined;
    const maxEventAgeMs = eic?.maximumEventAgeInSeconds !== undefined ? eic.maximumEventAgeInSeconds * 1000 : undefined;
    const job = {
      ...this.job(id, fn, event, type === 'RequestResponse'),
      invokedFunctionArn: invokedFunctionArn(fn.tenant, fn.name, qualifier),
      ...(clientContext ? { clientContext } : {}),
      ...(stream ? { stream } : {}),
      ...(maxEventAgeMs !== undefined ? { maxEventAgeMs } : {}),
      ...(eic?.destinations ? { destinations: eic.destinations } : {}),
      ...(destinationDepth ? { destinationDepth } : {}),
    };
    // Reserved concurrency counts queued and running invocations, sync and async, as the tenant's executions quota does.
    const reserved = (await this.extras?.admitJob(job)) === true;
    const out = await this.submitWith(job, reserved, {
      ...(stream ? { onChunk } : {}),
      attempts: (eic?.maximumRetryAttempts ?? fn.maxRetryAttempts) + 1,
      ...(idempotency ? { idempotency } : {}),
    });
    return { id: out.id, function: fn, ...(out.record ? { record: out.record } : {}) };
  }

  /**
   * Submits a job; one counted against its reserved concurrency is marked so (its release follows
   * its end) and uncounted at once if it never got queued. A sync caller's WaitTimeout leaves it
   * counted: the job may still run, and its end releases it.
   */
  private async submitWith(job: InvocationJob, reserved: boolean, s: Omit<Submission, 'job'>): Promise<{ id: string; record?: ExecutionRecord }> {
    try {
      return await this.submitter.submit({ ...s, job: reserved ? { ...job, reserved } : job });
    } catch (err) {
      // The submit's own error is the answer; a release lost with it is left to the quota's reconcile.
      if (reserved && !(err instanceof KilnError && err.code === 'WaitTimeout')) await this.extras?.releaseJob(job).catch(() => undefined);
      throw err;
    }
  }

  async listDeadLetters(who: Principal, ref: FunctionRef): Promise<DeadLetter[]> {
    return this.deadLetters.list(await this.functions.get(who, ref));
  }

  /** Queues a dead letter's event again as a new async invocation and removes the entry. */
  async replay(who: Principal, ref: FunctionRef, id: string): Promise<Invocation> {
    const fn = await this.functions.get(who, ref);
    // Taking the entry first means two concurrent replays cannot both queue it.
    const entry = await this.deadLetters.take(fn, id);
    if (!entry) throw new DeadLetterNotFoundError(fn.name, id);
    try {
      return await this.invoke(who, { name: fn.name, tenant: fn.tenant }, entry.qualifier, entry.event, 'Event');
    } catch (err) {
      await this.deadLetters.restore(entry);
      throw err;
    }
  }

  /** The job names the version's code package; the replica that runs it loads it only for a sandbox that needs it (invocation/dispatch.ts). */
  private job(id: string, fn: FunctionVersionRecord, event: string, sync: boolean): InvocationJob {
    const key = functionKey(fn);
    // The secrets' placeholders (and CA settings) join the environment at each lease (invocation/dispatch.ts).
    const egress = fn.network || fn.secrets?.length ? { egress: { ...(fn.network ? { policyJson: JSON.stringify(fn.network) } : {}), secrets: fn.secrets ?? [] } } : {};
    const payload = { key, name: fn.name, version: fn.version, runner: runnerOf(fn.runtime), handler: fn.handler, code: fn.codeBlob, env: fn.environment, memoryMB: fn.memorySize, ephemeralStorageMB: fn.ephemeralStorageMB ?? 512, ...egress };
    return { id, tenant: fn.tenant, template: fn.template, function: payload, event, timeoutMs: fn.timeout * 1000, submittedAt: Date.now(), sync, ...(sync ? {} : { retryHandlerErrors: true }) };
  }
}
