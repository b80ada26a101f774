import { randomUUID } from 'node:crypto';
import { ValidationError } from '../errors.js';
import type { ExecutionRecord, InvocationJob } from '../invocation/contract.js';
import { LANGUAGES, RUNTIMES, type Language } from '../invocation/languages.js';
import { eventText, inlineFunction } from '../invocation/request.js';
import type { Submitter } from '../invocation/submit.js';
import type { TemplateRegistry } from '../templates/registry.js';
import { canReach, type Principal } from '../tenancy/principal.js';
import type { ExecutionQueues } from '../queue/queues.js';
import type { ExecutionHistory, HistoryFilter } from './history.js';

export interface ExecutionRequest {
  code: string;
  language: Language;
  event?: unknown;
  timeoutMs?: number;
  wait?: boolean;
  template?: string;
  env?: Record<string, string>;
  /** Idempotency-Key of an asynchronous (`wait: false`) execution. */
  idempotencyKey?: string | undefined;
}

/**
 * Ad-hoc executions: code in, result out, through the one invocation path (invocation/). Each
 * is its caller's tenant's: only that tenant (or an administrator) reads it, and idempotency
 * keys are the tenant's own.
 */
export class ExecutionService {
  constructor(
    private readonly submitter: Submitter,
    private readonly templates: TemplateRegistry,
    private readonly limits: { defaultTimeoutMs: number; maxTimeoutMs: number },
    private readonly history?: { index: Pick<ExecutionHistory, 'list'>; records: ExecutionQueues['records'] },
  ) {}

  async submit(req: ExecutionRequest, who: Principal): Promise<{ record?: ExecutionRecord; id: string }> {
    const runtime = LANGUAGES[req.language];
    const templateName = req.template ?? RUNTIMES[runtime].template;
    const template = this.templates.get(templateName);
    if (!template.runtimes.includes(runtime)) {
      throw new ValidationError(`template "${templateName}" does not offer ${req.language}; it offers ${template.runtimes.join(', ')}`);
    }
    const timeoutMs = req.timeoutMs ?? this.limits.defaultTimeoutMs;
    if (timeoutMs > this.limits.maxTimeoutMs) throw new ValidationError(`timeoutMs must be at most ${this.limits.maxTimeoutMs}; got ${timeoutMs}`);
    const job: InvocationJob = {
      id: randomUUID(),
      tenant: who.tenant,
      template: templateName,
      function: inlineFunction({ scope: 'x', language: req.language, code: req.code, env: req.env ?? {}, memoryMB: template.resources.memoryMB, tenant: who.tenant }),
      event: eventText(req.event ?? null),
      timeoutMs,
      submittedAt: Date.now(),
      sync: req.wait !== false,
    };
    return this.submitter.submit({ job, ...(req.idempotencyKey && !job.sync ? { idempotency: { scope: 'executions', key: req.idempotencyKey } } : {}) });
  }

  /**
   * A page of finished executions, newest first, with their records (logs included): the key's
   * own tenant's, or (administrators) `tenant`'s. Another key naming another tenant gets an
   * empty page, as for functions. Entries whose record has gone (the retention ran out between
   * the two reads) are left out.
   */
  async list(who: Principal, query: { tenant?: string | undefined; filter: HistoryFilter; limit: number; cursor?: string | undefined }): Promise<{ executions: Array<ExecutionRecord & { function?: { name: string; version: string } }>; nextCursor?: string }> {
    const tenant = query.tenant ?? who.tenant;
    if (!this.history || !canReach(who, tenant)) return { executions: [] };
    const page = await this.history.index.list(tenant, query.filter, query.limit, query.cursor);
    const records = await this.history.records(page.entries);
    const executions = page.entries.flatMap((e, i) => {
      const r = records[i];
      return r ? [{ ...r, ...(e.function ? { function: e.function } : {}) }] : [];
    });
    return { executions, ...(page.next ? { nextCursor: page.next } : {}) };
  }

  /** 404 ExecutionNotFound for another tenant's execution, as for a missing one. */
  get(id: string, who: Principal): Promise<ExecutionRecord> {
    return this.submitter.get(id, who);
  }
}
