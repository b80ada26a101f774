import { createHash } from 'node:crypto';
import { InvokeStatus, type InvokeRequest, type InvokeResponse } from '@kiln/proto/executor/invoke';
import { jsonTooDeep, MAX_JSON_DEPTH, valueTooDeep } from '../api/json-depth.js';
import { KilnError } from '../errors.js';
import type { CodeFile, FunctionPayload, LambdaError, Outcome } from './contract.js';
import { handlerFile, LANGUAGES, runnerOf, type Language } from './languages.js';
import { DEFAULT_TENANT } from '../tenancy/principal.js';
import { currentRegion } from '../functions/arn.js';

/**
 * Both directions of the executor's Invoke RPC, for every surface: the event checked and kept
 * as text, the function identity hashed, the request built, and the response mapped to a
 * status with a result or an error.
 */

/**
 * An event too deeply nested to serialise safely (V8's JSON.stringify overflows at ~4,500
 * levels). Lambda's InvalidRequestContentException on the Lambda API, 400 everywhere.
 */
export class EventTooDeepError extends KilnError {
  constructor() {
    super('InvalidRequestContent', 400, `the event is nested more than ${MAX_JSON_DEPTH} levels deep`, { maxDepth: MAX_JSON_DEPTH });
  }
}

/** An event given as a value (REST body, MCP arguments) as JSON text; refuses one nested too deeply. */
export function eventText(event: unknown): string {
  if (valueTooDeep(event)) throw new EventTooDeepError();
  return JSON.stringify(event ?? null);
}

/** Refuses event text nested too deeply (it is parsed again by the runner, and maybe echoed). */
export function checkEventDepth(text: string): void {
  if (jsonTooDeep(text)) throw new EventTooDeepError();
}

/** 32 hex characters of SHA-256: long enough that two pieces of code never share an instance. */
function hash(parts: unknown): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 32);
}

/**
 * The instance identity of a function version: any change to code or configuration (each gets a
 * new revisionId) or a different version gives a new key, so no invocation lands on an instance
 * that loaded other code, while repeated invocations of one version reuse it. The tenant is part
 * of it: two tenants' `hello` never share a hot sandbox (nor its module state), whatever their code.
 */
export function functionKey(r: { tenant: string; name: string; version: string; revisionId: string; codeSha256: string; runtime: string; handler: string; memorySize: number; timeout: number; environment: Record<string, string> }): string {
  return `f-${hash([r.tenant, r.name, r.version, r.revisionId, r.codeSha256, r.runtime, r.handler, r.memorySize, r.timeout, r.environment])}`;
}

/**
 * A one-file function made of inline code (ad-hoc executions, session `execute`). The code's
 * hash is its identity, so the same code reuses a hot instance (module state included) like a
 * Lambda function would, while different code never shares a sandbox. `scope` keeps the
 * identities of different surfaces apart (`x` executions, `s` sessions), and `tenant` those of
 * tenants: the same code sent by two tenants runs in two instances, so neither sees the
 * other's module state.
 */
export function inlineFunction(opts: { scope: 'x' | 's'; language: Language; code: string; env: Record<string, string>; memoryMB: number; name?: string; tenant?: string }): FunctionPayload & { files: CodeFile[] } {
  const runtime = LANGUAGES[opts.language];
  const handler = 'index.handler';
  const file = handlerFile(runtime, handler, opts.code);
  // Without a tenant the identity is what it was before tenants (sessions run in their own sandbox).
  const key = hash(opts.tenant === undefined ? [runtime, file.path, opts.code, opts.env] : [opts.tenant, runtime, file.path, opts.code, opts.env]);
  return {
    key: `${opts.scope}-${key}`,
    name: opts.name ?? `execution-${key.slice(0, 12)}`,
    version: '$LATEST',
    runner: runnerOf(runtime),
    handler,
    files: [{ path: file.path, content: Buffer.from(opts.code).toString('base64'), mode: file.mode }],
    env: opts.env,
    memoryMB: opts.memoryMB,
  };
}

/**
 * The Invoke RPC's request; `files` (the function's code) is sent along for a sandbox that must
 * load it, with the tenant that owns it (the account id of the ARN in the handler's context).
 */
export function invokeRequest(
  sandboxId: string,
  requestId: string,
  fn: FunctionPayload,
  event: string,
  timeoutMs: number,
  files: CodeFile[] | undefined,
  tenant: string = DEFAULT_TENANT,
  caller: { clientContext?: string; invokedFunctionArn?: string } = {},
): InvokeRequest {
  return {
    sandboxId,
    requestId,
    functionKey: fn.key,
    function: files
      ? {
          functionKey: fn.key,
          name: fn.name,
          version: fn.version,
          runner: fn.runner,
          handler: fn.handler,
          files: files.map((f) => ({ path: f.path, content: Buffer.from(f.content, 'base64'), mode: f.mode })),
          env: fn.env,
          memoryMb: fn.memoryMB,
          ephemeralStorageMb: fn.ephemeralStorageMB ?? 0,
          tenant,
          region: currentRegion(),
        }
      : undefined,
    payload: Buffer.from(event, 'utf8'),
    timeoutMs,
    clientContext: caller.clientContext ?? '',
    invokedFunctionArn: caller.invokedFunctionArn ?? '',
  };
}


/**
 * Maps the executor's response. Results are JSON text, passed on unparsed, except a custom runtime's bytes that are not
 * (`raw`): those come back as `resultBase64` on every JSON surface (REST, MCP, session execute)
 * and as the bytes themselves on the Lambda API, whose contract is bytes.
 */
export function outcomeOf(res: InvokeResponse): Outcome {
  if (res.status === InvokeStatus.INVOKE_STATUS_SUCCEEDED) {
    const payload = Buffer.from(res.payload);
    if (res.raw) return { status: 'succeeded', resultBase64: payload.toString('base64') };
    // JSON the executor checked (executor/src/sandbox/channel.ts), kept as text: see `resultJson`.
    return { status: 'succeeded', resultJson: payload.length ? payload.toString('utf8') : 'null' };
  }
  const error: LambdaError = res.error ?? { errorType: 'Unknown', errorMessage: 'the executor returned no error details', stackTrace: [] };
  // A custom runtime's error document, as it posted it (the executor checked it is a JSON object).
  const errorBody = res.payload.length ? Buffer.from(res.payload).toString('utf8') : undefined;
  return { status: res.status === InvokeStatus.INVOKE_STATUS_TIMEOUT ? 'timeout' : 'failed', error, ...(errorBody !== undefined ? { errorBody } : {}) };
}
