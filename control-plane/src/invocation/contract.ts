import { z } from '@hono/zod-openapi';

/**
 * The job contract: what a queued invocation carries and what it ends as. The zod schemas are
 * the only definition; the TypeScript types are derived from them and the OpenAPI document
 * shows the same schemas, so the record a worker stores is the record the API documents.
 */

/** Lambda's error shape, used for handler errors and platform errors (`Kiln.<code>`) alike. */
export const LambdaErrorSchema = z
  .object({ errorType: z.string(), errorMessage: z.string(), stackTrace: z.array(z.string()) })
  .openapi('LambdaError');
export type LambdaError = z.infer<typeof LambdaErrorSchema>;

export const TimingsSchema = z.object({ queuedMs: z.number(), scheduleMs: z.number(), initMs: z.number(), handlerMs: z.number(), totalMs: z.number() }).openapi('Timings');
export type Timings = z.infer<typeof TimingsSchema>;

export const ExecutionStatusSchema = z.enum(['queued', 'running', 'succeeded', 'failed', 'timeout']);
export type ExecutionStatus = z.infer<typeof ExecutionStatusSchema>;

/** What GET /executions/{id}, a sync POST and a sync function invocation return. */
export const ExecutionRecordSchema = z
  .object({
    id: z.string().uuid(),
    status: ExecutionStatusSchema,
    result: z.unknown().optional().openapi({ description: 'The handler\'s JSON result (succeeded only)' }),
    resultBase64: z
      .string()
      .optional()
      .openapi({ description: 'Set instead of `result` when a custom (`provided`) runtime returned bytes: those bytes, base64. The Lambda API returns the bytes themselves.' }),
    error: LambdaErrorSchema.optional().openapi({ description: 'The handler\'s error, or `Kiln.<code>` for a platform failure (Kiln.ExecutorLost, Kiln.NoCapacity, Kiln.Interrupted, Kiln.Abandoned, ...)' }),
    errorBody: z
      .string()
      .optional()
      .openapi({ description: 'Custom (`provided`) runtimes: the error document as the runtime posted it to /runtime/invocation/{id}/error (JSON text), which the Lambda API returns unchanged' }),
    logs: z.string(),
    logsTruncated: z.boolean().optional(),
    durationMs: z.number(),
    startType: z.enum(['hot', 'warm', 'cold']).optional(),
    timings: TimingsSchema.optional(),
    maxMemoryMB: z.number().optional(),
    template: z.string(),
    tenant: z.string().optional().openapi({ description: 'The tenant that owns it (absent on records made before tenants: `default`)' }),
    createdAt: z.string(),
    finishedAt: z.string().optional(),
  })
  .openapi('Execution');
export type ExecutionRecord = z.infer<typeof ExecutionRecordSchema> & {
  /**
   * The handler's JSON result as the text its runner wrote (checked by the executor), kept
   * instead of `result` so that it reaches the caller byte for byte (`2**64+1`, `1.50`, its
   * spacing) without being parsed and serialised again on the way. Surfaces show it as
   * `result`: `recordJson` embeds it as it is, `resultValue` parses it.
   */
  resultJson?: string;
};

/** What an invocation ended as, from the sandbox's point of view (request.ts maps the executor's answer). */
export type Outcome = Pick<ExecutionRecord, 'status' | 'result' | 'resultJson' | 'resultBase64' | 'error' | 'errorBody'>;

/** A record (or a session's execute outcome) as the API shows it, as JSON text: `resultJson` embedded as `result`, unparsed. */
export function recordJson<T extends { resultJson?: string }>(record: T): string {
  const { resultJson, ...rest } = record;
  const head = JSON.stringify(rest);
  return resultJson === undefined ? head : `${head.slice(0, -1)},"result":${resultJson}}`;
}

/** A record's result as a value (for surfaces that build their own JSON, like MCP's). */
export function resultValue(record: ExecutionRecord): unknown {
  return record.resultJson !== undefined ? (JSON.parse(record.resultJson) as unknown) : record.result;
}

export const CodeFileSchema = z.object({ path: z.string(), content: z.string().describe('base64'), mode: z.number().int() });
export type CodeFile = z.infer<typeof CodeFileSchema>;

/**
 * What a sandbox needs to load a function version; kept in the job so any replica can run it.
 * The code is in the job only when it came with the request (`files`: ad-hoc executions); a
 * function version's package is named (`code`), and whichever replica runs the job reads it
 * from the blob store (cached per replica) only for a sandbox that must load it. Copying the
 * package into every job wrote it to Redis and read it back on each invocation: a hot invoke
 * of a function with 3 MB of code took 183 ms instead of 7 ms.
 */
export const FunctionPayloadSchema = z.object({
  /** The instance identity: code and configuration hashed (request.ts). */
  key: z.string(),
  name: z.string(),
  version: z.string(),
  runner: z.string(),
  handler: z.string(),
  /** Inline code (ad-hoc executions, session execute). */
  files: z.array(CodeFileSchema).optional(),
  /** The blob key of a function version's code package (functions/package.ts). */
  code: z.string().optional(),
  env: z.record(z.string()),
  memoryMB: z.number(),
  /**
   * The function's own egress policy (normalised JSON) and secret names: put on the sandbox at
   * every lease (invocation/dispatch.ts), never the values (the replica that runs it opens them).
   */
  egress: z.object({ policyJson: z.string().optional(), secrets: z.array(z.string()) }).optional(),
  /** Function versions: the size of /tmp in MB (EphemeralStorage.Size), set when a sandbox loads it. */
  ephemeralStorageMB: z.number().optional(),
});
export type FunctionPayload = z.infer<typeof FunctionPayloadSchema>;

/** A queued invocation (a BullMQ job's data). */
export const InvocationJobSchema = z.object({
  id: z.string(),
  /**
   * The tenant that owns the invocation: the caller's for an ad-hoc execution, the function's
   * for a function invocation. Only its tenant (or an administrator) reads its record. Absent
   * in jobs queued before tenants: the default tenant's.
   */
  tenant: z.string().optional(),
  template: z.string(),
  function: FunctionPayloadSchema,
  /** The event as JSON text (kept as text: parsing it here would only be undone later). */
  event: z.string(),
  timeoutMs: z.number(),
  submittedAt: z.number(),
  /**
   * Sync callers wait, and a sync job runs at most once: a platform failure fails it at once,
   * and a job whose caller is gone, or that already started once, is not run (outcome.ts).
   */
  sync: z.boolean(),
  /** Lambda's client context (X-Amz-Client-Context decoded): a JSON object as text, for context.clientContext. */
  clientContext: z.string().optional(),
  /** The ARN the caller invoked, with its qualifier if it gave one (context.invokedFunctionArn). */
  invokedFunctionArn: z.string().optional(),
  /** The caller reads the response as it is written: the body travels as chunks (invocation/stream.ts). Sync jobs only. */
  stream: z.boolean().optional(),
  /**
   * Async function invocations with a MaximumEventAgeInSeconds (functions/event-invoke.ts): an
   * attempt that would start when the event is older than this is not run; the event is dead-lettered.
   */
  maxEventAgeMs: z.number().optional(),
  /**
   * Async function invocations whose event invoke config names destinations (function ARNs of the
   * job's tenant, functions/destinations.ts): where the invocation record goes when the job settles.
   */
  destinations: z.object({ onSuccess: z.string().optional(), onFailure: z.string().optional() }).optional(),
  /** How many destination invocations led to this one (0 or absent: invoked by a caller); bounded against loops. */
  destinationDepth: z.number().int().optional(),
  /** Counted against its function's reserved concurrency (functions/settings.ts), released when it settles. */
  reserved: z.boolean().optional(),
  /** Replica whose caller waits for this job's record (its Redis reply channel). */
  replyTo: z.string().optional(),
  /**
   * Async function invocations: a handler error or timeout fails the attempt (so it is retried,
   * like Lambda's event invocations) and the last failure is dead-lettered.
   */
  retryHandlerErrors: z.boolean().optional(),
});
export type InvocationJob = z.infer<typeof InvocationJobSchema>;
