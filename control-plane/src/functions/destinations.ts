import { ValidationError, KilnError } from '../errors.js';
import type { ExecutionRecord, InvocationJob } from '../invocation/contract.js';
import { resultValue } from '../invocation/contract.js';
import { log } from '../log.js';
import { principal, type Principal } from '../tenancy/principal.js';
import { invokedFunctionArn } from './arn.js';
import type { FunctionService } from './service.js';

/** Where an async invocation's outcome goes (DestinationConfig), as function ARNs of the same tenant. */
export interface Destinations {
  onSuccess?: string;
  onFailure?: string;
}

/** Why a record goes to a destination: Lambda's `requestContext.condition`. */
export type DestinationCondition = 'Success' | 'RetriesExhausted' | 'EventAgeExceeded';

/**
 * How deep a chain of destination invocations may go (A's destination B, B's destination C, ...).
 * A loop of destinations (A fails into B, B fails into A) would otherwise run forever; Lambda's
 * recursive loop detection stops such loops after about 16 invocations, and so does Kiln.
 */
export const MAX_DESTINATION_DEPTH = 16;

const FUNCTION_ARN = /^arn:aws[a-z-]*:lambda:([a-z0-9-]+):([a-z0-9-]{1,63}):function:([A-Za-z0-9_-]{1,64})(?::([A-Za-z0-9_$-]{1,128}))?$/;
const SUPPORTED = 'Kiln supports Lambda function ARNs of this account as destinations (arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]); SQS, SNS, EventBridge and S3 destinations are not supported';

/** The service of an ARN, for the refusal's message. */
function serviceOf(arn: string): string | undefined {
  return /^arn:aws[a-z-]*:([a-z0-9-]+):/.exec(arn)?.[1];
}

/**
 * Checks one destination and returns its ARN: a Lambda function (or version or alias) that exists
 * in the caller's own tenant. Anything else is InvalidParameterValueException (400): another
 * tenant's function is refused as a missing one would be, so a tenant learns nothing of another's.
 */
async function checkDestination(field: string, value: unknown, who: Principal, functions: Pick<FunctionService, 'resolve'>): Promise<string | undefined> {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) throw new ValidationError(`${field} must be an object such as {"Destination": "arn:aws:lambda:…:function:name"}`, { field });
  const dest = (value as { Destination?: unknown }).Destination;
  if (dest === undefined || dest === null) return undefined;
  if (typeof dest !== 'string' || dest.length > 256) throw new ValidationError(`${field}.Destination must be an ARN of at most 256 characters`, { field });
  const m = FUNCTION_ARN.exec(dest);
  if (!m) {
    const service = serviceOf(dest);
    throw new ValidationError(`${field}.Destination ${JSON.stringify(dest.slice(0, 120))} is ${service && service !== 'lambda' ? `an ${service.toUpperCase()} ARN` : 'not a Lambda function ARN'}: ${SUPPORTED}`, { field });
  }
  const [, , account, name, qualifier] = m;
  const missing = () => new ValidationError(`${field}.Destination: no function ${name}${qualifier ? `:${qualifier}` : ''} in this account (${who.tenant}); ${SUPPORTED}`, { field });
  if (account !== who.tenant) throw missing();
  try {
    await functions.resolve(who, { name: name as string, tenant: who.tenant }, qualifier);
  } catch (err) {
    if (err instanceof KilnError && err.status === 404) throw missing();
    throw err;
  }
  return dest;
}

/** DestinationConfig ({OnSuccess: {Destination}, OnFailure: {Destination}}) checked; undefined when absent. */
export async function checkDestinationConfig(value: unknown, who: Principal, functions: Pick<FunctionService, 'resolve'>): Promise<Destinations | undefined> {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) throw new ValidationError('DestinationConfig must be an object with OnSuccess and/or OnFailure', { field: 'DestinationConfig' });
  const d = value as { OnSuccess?: unknown; OnFailure?: unknown };
  const onSuccess = await checkDestination('DestinationConfig.OnSuccess', d.OnSuccess, who, functions);
  const onFailure = await checkDestination('DestinationConfig.OnFailure', d.OnFailure, who, functions);
  return { ...(onSuccess ? { onSuccess } : {}), ...(onFailure ? { onFailure } : {}) };
}

/**
 * Lambda's invocation record, as a destination function receives it as its event: the request,
 * why it is sent, and (unless the event was too old to run) the response: the handler's result,
 * or its error document with `functionError: "Unhandled"`.
 */
export function destinationRecord(job: InvocationJob, record: ExecutionRecord, condition: DestinationCondition, attempts: number): Record<string, unknown> {
  const tenant = job.tenant ?? 'default';
  const out: Record<string, unknown> = {
    version: '1.0',
    timestamp: record.finishedAt ?? new Date().toISOString(),
    requestContext: {
      requestId: job.id,
      // The version that ran, always qualified, as Lambda's record shows it.
      functionArn: invokedFunctionArn(tenant, job.function.name, job.function.version || '$LATEST'),
      condition,
      approximateInvokeCount: attempts,
    },
    requestPayload: parseOr(job.event),
  };
  if (condition === 'EventAgeExceeded') return out;
  const executedVersion = job.function.version || '$LATEST';
  if (record.status === 'succeeded') {
    out.responseContext = { statusCode: 200, executedVersion };
    out.responsePayload = record.resultBase64 !== undefined ? Buffer.from(record.resultBase64, 'base64').toString('utf8') : (resultValue(record) ?? null);
  } else {
    out.responseContext = { statusCode: 200, executedVersion, functionError: 'Unhandled' };
    out.responsePayload = record.errorBody !== undefined ? parseOr(record.errorBody) : { errorMessage: record.error?.errorMessage ?? `invocation ${record.status}`, errorType: record.error?.errorType ?? record.status, requestId: job.id, stackTrace: record.error?.stackTrace ?? [] };
  }
  return out;
}

function parseOr(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** Invokes a function asynchronously (FunctionInvoker.invoke, Event), one depth further down a chain. */
export type DestinationInvoke = (who: Principal, ref: { name: string; tenant: string }, qualifier: string | undefined, payload: string, idempotencyKey: string, depth: number) => Promise<unknown>;

/**
 * Sends an async invocation's outcome to its destination, if its config named one for the
 * condition: an asynchronous invocation of that function, as the function's own tenant (a
 * destination was checked to be in it when the config was put). The idempotency key (the job and
 * the condition) makes a job settled twice (its replica died after the send) one delivery. A
 * record too large for an async event, or a destination deleted since, is logged and dropped:
 * the job's own record and dead letter keep the outcome.
 */
export async function sendToDestination(invoke: DestinationInvoke, job: InvocationJob, record: ExecutionRecord, condition: DestinationCondition, attempts: number): Promise<void> {
  const target = condition === 'Success' ? job.destinations?.onSuccess : job.destinations?.onFailure;
  if (!target) return;
  const depth = (job.destinationDepth ?? 0) + 1;
  if (depth > MAX_DESTINATION_DEPTH) {
    log('warn', 'destination not invoked: the chain of destinations is too deep (a loop?)', { id: job.id, destination: target, depth });
    return;
  }
  const m = FUNCTION_ARN.exec(target);
  if (!m) return;
  const tenant = job.tenant ?? 'default';
  const [, , , name, qualifier] = m;
  const who = principal(tenant, 'lambda-destination', ['invoke']);
  try {
    await invoke(who, { name: name as string, tenant }, qualifier, JSON.stringify(destinationRecord(job, record, condition, attempts)), `destination:${job.id}:${condition}`, depth);
  } catch (err) {
    log('warn', 'could not invoke a destination', { id: job.id, destination: target, condition, error: err instanceof Error ? err.message : String(err) });
  }
}
