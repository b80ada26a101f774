import type { StartType } from '../scheduler/scheduler.js';

export type ExecutionStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'timeout';

/** Lambda's error shape, used for handler errors and platform errors alike. */
export interface LambdaError {
  errorType: string;
  errorMessage: string;
  stackTrace: string[];
}

export interface CodeFile {
  path: string;
  /** base64 */
  content: string;
  mode: number;
}

/** What a sandbox needs to load a function version; kept in the job so any replica can run it. */
export interface FunctionPayload {
  key: string;
  name: string;
  version: string;
  runner: string;
  handler: string;
  files: CodeFile[];
  env: Record<string, string>;
  memoryMB: number;
}

/** A BullMQ job's data. */
export interface ExecutionJob {
  id: string;
  template: string;
  function: FunctionPayload;
  /** The event as JSON text (kept as text: parsing it here would only be undone later). */
  event: string;
  timeoutMs: number;
  submittedAt: number;
  /** Sync callers wait; a platform failure fails them at once instead of retrying. */
  sync: boolean;
  /** Replica whose caller waits for this job's record (its Redis reply channel). */
  replyTo?: string;
  /**
   * Async function invocations: a handler error or timeout fails the attempt (so BullMQ
   * retries it, like Lambda's event invocations) and the last failure is dead-lettered.
   */
  retryHandlerErrors?: boolean;
}

export interface Timings {
  queuedMs: number;
  scheduleMs: number;
  initMs: number;
  handlerMs: number;
  totalMs: number;
}

/** What GET /executions/{id} and a sync POST return. */
export interface ExecutionRecord {
  id: string;
  status: ExecutionStatus;
  result?: unknown;
  /** Set instead of `result` when a custom runtime returned bytes that are not JSON (base64). */
  resultBase64?: string;
  error?: LambdaError;
  logs: string;
  logsTruncated?: boolean;
  durationMs: number;
  startType?: StartType;
  timings?: Timings;
  maxMemoryMB?: number;
  template: string;
  createdAt: string;
  finishedAt?: string;
}
