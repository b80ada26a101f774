import { createHash, randomUUID } from 'node:crypto';
import { KilnError } from '../errors.js';
import type { ExecutionJob, ExecutionRecord, FunctionPayload } from '../executions/types.js';
import type { ExecutionQueues } from '../queue/queues.js';
import { RUNTIME_RUNNERS } from '../templates/template.js';
import type { DeadLetterStore } from './deadletters.js';
import { DeadLetterNotFoundError, InvalidPayloadError, PayloadTooLargeError } from './errors.js';
import type { CodePackages } from './package.js';
import type { FunctionService } from './service.js';
import type { DeadLetter, FunctionVersionRecord } from './types.js';

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
 * The identity of an instance: any change to code or configuration (each gets a new
 * revisionId) or a different version gives a new key, so no invocation ever lands on an
 * instance that loaded other code, while repeated invocations of one version reuse it.
 */
export function functionKey(r: FunctionVersionRecord): string {
  const h = createHash('sha256').update(JSON.stringify([r.name, r.version, r.revisionId, r.codeSha256, r.runtime, r.handler, r.memorySize, r.timeout, r.environment]));
  return `f-${h.digest('hex').slice(0, 32)}`;
}

/** Invokes function versions through the template queues; async failures end as dead letters. */
export class FunctionInvoker {
  constructor(
    private readonly functions: FunctionService,
    private readonly packages: CodePackages,
    private readonly queues: ExecutionQueues,
    private readonly deadLetters: DeadLetterStore,
  ) {}

  async invoke(name: string, qualifier: string | undefined, payload: string, type: InvocationType): Promise<Invocation> {
    const bytes = Buffer.byteLength(payload);
    const max = type === 'Event' ? ASYNC_PAYLOAD_BYTES : SYNC_PAYLOAD_BYTES;
    if (bytes > max) throw new PayloadTooLargeError(bytes, max, type === 'Event' ? 'an asynchronous' : 'a synchronous');
    const event = payload.trim() === '' ? '{}' : payload;
    try {
      JSON.parse(event);
    } catch (err) {
      throw new InvalidPayloadError((err as Error).message);
    }
    const fn = await this.functions.get(name, qualifier);
    const id = randomUUID();
    if (type === 'DryRun') return { id, function: fn };
    const job = await this.job(id, fn, event, type === 'RequestResponse');
    if (!job.sync) {
      await this.queues.add(job, fn.maxRetryAttempts + 1);
      return { id, function: fn };
    }
    const record = await this.queues.addAndWait(job, job.timeoutMs + 60_000);
    if (!record) throw new KilnError('WaitTimeout', 504, `invocation ${id} did not finish in time; poll GET /api/v1/executions/${id}`, { id });
    return { id, function: fn, record };
  }

  listDeadLetters(name: string): Promise<DeadLetter[]> {
    return this.functions.get(name).then(() => this.deadLetters.list(name));
  }

  /** Queues a dead letter's event again as a new async invocation and removes the entry. */
  async replay(name: string, id: string): Promise<Invocation> {
    await this.functions.get(name);
    // Taking the entry first means two concurrent replays cannot both queue it.
    const entry = await this.deadLetters.take(name, id);
    if (!entry) throw new DeadLetterNotFoundError(name, id);
    try {
      return await this.invoke(name, entry.qualifier, entry.event, 'Event');
    } catch (err) {
      await this.deadLetters.restore(entry);
      throw err;
    }
  }

  private async job(id: string, fn: FunctionVersionRecord, event: string, sync: boolean): Promise<ExecutionJob> {
    const files = await this.packages.load(fn.codeBlob);
    if (!files) throw new KilnError('CodeMissing', 500, `the code package of function "${fn.name}" version ${fn.version} is missing from storage`, { functionName: fn.name });
    const payload: FunctionPayload = {
      key: functionKey(fn),
      name: fn.name,
      version: fn.version,
      runner: RUNTIME_RUNNERS[fn.runtime] as string,
      handler: fn.handler,
      files,
      env: fn.environment,
      memoryMB: fn.memorySize,
    };
    return { id, template: fn.template, function: payload, event, timeoutMs: fn.timeout * 1000, submittedAt: Date.now(), sync, ...(sync ? {} : { retryHandlerErrors: true }) };
  }
}
