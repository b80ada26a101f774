import type { LambdaError } from '../invocation/contract.js';
import type { LambdaRuntime } from '../invocation/languages.js';
import type { EgressPolicy } from '@kiln/executor/egress-policy';

/** A Lambda runtime identifier Kiln accepts (the table is invocation/languages.ts). */
export type FunctionRuntime = LambdaRuntime;

/** Lambda's own name rule; names also end up in Redis keys, so nothing else may pass. */
export const FUNCTION_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** Everything that decides how a function version runs. Versions copy it unchanged. */
export interface FunctionConfig {
  /**
   * The tenant that owns it (tenancy/principal.ts). Function names are per tenant. Records made
   * before tenants have none stored; the store fills in the tenant whose keys it read them from.
   */
  tenant: string;
  name: string;
  runtime: FunctionRuntime;
  handler: string;
  template: string;
  memorySize: number;
  /** Lambda's EphemeralStorage.Size: /tmp in MB (512–10240). Absent on records made before it: 512. */
  ephemeralStorageMB?: number;
  /** Seconds, like Lambda. */
  timeout: number;
  environment: Record<string, string>;
  /**
   * The function's own egress policy (normalised), set on every sandbox that runs it, per lease
   * (egress/placement.ts). Absent: its template's. Only on templates with an egress policy.
   */
  network?: EgressPolicy;
  /** Names of its tenant's egress secrets bound to every sandbox that runs it; placeholders join its environment. */
  secrets?: string[];
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
  /** The function's tenant; absent in entries made before tenants (the default tenant's). */
  tenant?: string;
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

/**
 * A function as a caller names it. `tenant` is whose namespace the name is in: absent, the
 * caller's own; another tenant's only reaches it for an administrator (others are told the
 * function does not exist).
 */
export interface FunctionRef {
  name: string;
  tenant?: string | undefined;
}

/**
 * AWS's alias name rule, `(?!^[0-9]+$)([a-zA-Z0-9-_]+)` with at most 128 characters: never all
 * digits, so an alias can never be mistaken for a version number in a qualifier.
 */
export const ALIAS_NAME = /^(?!\d+$)[A-Za-z0-9_-]{1,128}$/;

/**
 * A named pointer to $LATEST or a published version, optionally sending a share of invocations
 * to a second published version (weighted routing). Its tenant and function are those of the
 * key it is stored under, as for versions.
 */
export interface AliasRecord {
  name: string;
  /** $LATEST or a published version number. */
  functionVersion: string;
  description: string;
  /** At most one published version → the share (0..1) of invocations it gets instead. */
  additionalVersionWeights: Record<string, number>;
  /** Changes with every write; UpdateAlias and DeleteAlias may name the one they saw. */
  revisionId: string;
}
