import { createHash, randomUUID } from 'node:crypto';
import { KilnError, NotFoundError, ValidationError } from '../errors.js';
import type { ExecutionQueues } from '../queue/queues.js';
import type { TemplateRegistry } from '../templates/registry.js';
import { RUNTIME_RUNNERS } from '../templates/template.js';
import type { ExecutionJob, ExecutionRecord, FunctionPayload } from './types.js';

/** Languages of ad-hoc executions → the template that serves them and its Lambda runtime. */
export const LANGUAGES = {
  nodejs: { template: 'nodejs', runtime: 'nodejs20.x' },
  python: { template: 'python', runtime: 'python3.11' },
} as const;
export type Language = keyof typeof LANGUAGES;

export interface ExecutionRequest {
  code: string;
  language: Language;
  event?: unknown;
  timeoutMs?: number;
  wait?: boolean;
  template?: string;
  env?: Record<string, string>;
}

/** Node's handler file is ESM when the code uses `export`, as users of .mjs handlers expect. */
function sourceFile(language: Language, code: string): string {
  if (language === 'python') return 'index.py';
  return /^\s*export\s/m.test(code) ? 'index.mjs' : 'index.js';
}

/**
 * Ad-hoc executions: code in, result out. The code's hash is its function identity, so a
 * repeated execution of the same code reuses a hot instance like a Lambda function would
 * (module state included) while different code never shares a sandbox.
 */
export class ExecutionService {
  constructor(
    private readonly queues: ExecutionQueues,
    private readonly templates: TemplateRegistry,
    private readonly limits: { defaultTimeoutMs: number; maxTimeoutMs: number },
  ) {}

  async submit(req: ExecutionRequest): Promise<{ record?: ExecutionRecord; id: string }> {
    const lang = LANGUAGES[req.language];
    const templateName = req.template ?? lang.template;
    const template = this.templates.get(templateName);
    if (!template.runtimes.includes(lang.runtime)) {
      throw new ValidationError(`template "${templateName}" does not offer ${req.language}; it offers ${template.runtimes.join(', ')}`);
    }
    const timeoutMs = req.timeoutMs ?? this.limits.defaultTimeoutMs;
    if (timeoutMs > this.limits.maxTimeoutMs) throw new ValidationError(`timeoutMs must be at most ${this.limits.maxTimeoutMs}; got ${timeoutMs}`);
    const file = sourceFile(req.language, req.code);
    const env = req.env ?? {};
    const key = createHash('sha256').update(`${lang.runtime}\0${file}\0${req.code}\0${JSON.stringify(env)}`).digest('hex').slice(0, 32);
    const fn: FunctionPayload = {
      key: `x-${key}`,
      name: `execution-${key.slice(0, 12)}`,
      version: '$LATEST',
      runner: RUNTIME_RUNNERS[lang.runtime] as string,
      handler: 'index.handler',
      files: [{ path: file, content: Buffer.from(req.code).toString('base64'), mode: 0o644 }],
      env,
      memoryMB: template.resources.memoryMB,
    };
    const job: ExecutionJob = {
      id: randomUUID(),
      template: templateName,
      function: fn,
      event: JSON.stringify(req.event ?? null),
      timeoutMs,
      submittedAt: Date.now(),
      sync: req.wait !== false,
    };
    if (!job.sync) {
      await this.queues.add(job);
      return { id: job.id };
    }
    const record = await this.queues.addAndWait(job, timeoutMs + 60_000);
    if (!record) throw new KilnError('WaitTimeout', 504, `execution ${job.id} did not finish in time; poll GET /api/v1/executions/${job.id}`, { id: job.id });
    return { id: job.id, record };
  }

  async get(id: string): Promise<ExecutionRecord> {
    const record = await this.queues.get(id);
    if (!record) throw new NotFoundError('Execution', id);
    return record;
  }
}
