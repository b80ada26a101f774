import type { LambdaError } from '../invocation/contract.js';
import type { LambdaRuntime } from '../invocation/languages.js';

/** A Lambda runtime identifier Kiln accepts (the table is invocation/languages.ts). */
export type FunctionRuntime = LambdaRuntime;

/** Lambda's own name rule; names also end up in Redis keys, so nothing else may pass. */
export const FUNCTION_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** Everything that decides how a function version runs. Versions copy it unchanged. */
export interface FunctionConfig {
  name: string;
  runtime: FunctionRuntime;
  handler: string;
  template: string;
  memorySize: number;
  /** Seconds, like Lambda. */
  timeout: number;
  environment: Record<string, string>;
  description: string;
  /** Retries of a failed async invocation before it is dead-lettered (Lambda's event invoke config, 0–2). */
  maxRetryAttempts: number;
  /** base64 SHA-256 of the uploaded zip (or inline source), as Lambda reports it. */
  codeSha256: string;
  codeSize: number;
  /** Blob key of the unpacked code package. */
  codeBlob: string;
  /** ISO time of the last change to code or configuration. */
  lastModified: string;
  /** Changes with every write; lets updates be compare-and-set. */
  revisionId: string;
}

/** $LATEST or a published version: the config plus which version it is. */
export interface FunctionVersionRecord extends FunctionConfig {
  version: string;
}

/** An async invocation that failed its last attempt; replayable. */
export interface DeadLetter {
  id: string;
  functionName: string;
  qualifier: string;
  /** The event as JSON text. */
  event: string;
  /** The last attempt's error (the handler's errorType and message, or `Kiln.<code>`). */
  error: LambdaError;
  /** The last attempt's log. */
  logs?: string;
  logsTruncated?: boolean;
  attempts: number;
  failedAt: string;
}
