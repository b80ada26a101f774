import type { Context } from 'hono';
import { z } from 'zod';
import { ValidationError } from '../../errors.js';
import { InvalidPayloadError } from '../../functions/errors.js';
import type { FunctionSettings } from '../../functions/service.js';
import type { FunctionRef, FunctionVersionRecord } from '../../functions/types.js';
import type { LambdaError } from '../../invocation/contract.js';
import { functionArn } from '../../functions/arn.js';
import { TENANT_ID } from '../../tenancy/principal.js';

/**
 * An AWS account id (12 digits), like the 000000000000 of the ARNs Kiln made before tenants: an
 * ARN with one names the caller's own tenant, so ARNs that tools stored or built keep working.
 * Only another account id (a tenant id) addresses another tenant.
 */
const AWS_ACCOUNT = /^\d{12}$/;
export { functionArn };

/**
 * Lambda accepts a name, `name:qualifier`, a partial ARN (`<account>:function:name`) or a full
 * ARN, each optionally with a qualifier. Returns the bare name, the qualifier, and the tenant
 * the account id names (absent for a bare name or an AWS account id: the caller's own).
 * Whether the caller may reach that tenant is the function service's question (404 if not).
 */
export function parseFunctionName(raw: string): { name: string; qualifier?: string; tenant?: string } {
  const m = /^(?:(?:arn:[^:]+:lambda:[^:]*:)?([^:]+):function:)?([^:]+)(?::([^:]+))?$/.exec(raw);
  if (!m?.[2]) throw new ValidationError(`FunctionName "${raw.slice(0, 140)}" is not a function name or ARN`, { field: 'FunctionName' });
  const tenant = m[1] === undefined || AWS_ACCOUNT.test(m[1]) ? undefined : m[1];
  if (tenant !== undefined && !TENANT_ID.test(tenant)) {
    throw new ValidationError(`the account id of "${raw.slice(0, 140)}" is not a tenant id (Kiln's ARNs carry the tenant as the account id)`, { field: 'FunctionName' });
  }
  return { name: m[2], ...(m[3] ? { qualifier: m[3] } : {}), ...(tenant !== undefined ? { tenant } : {}) };
}

/** Lambda's LastModified format: ISO 8601 with a +0000 offset. */
const lambdaTime = (iso: string) => iso.replace(/Z$/, '+0000');

/**
 * A record as Lambda's FunctionConfiguration. Read through an alias, its ARN is the alias's (as
 * AWS shows it) and Version the version the alias points at.
 */
export function configuration(r: FunctionVersionRecord, alias?: string): Record<string, unknown> {
  return {
    FunctionName: r.name,
    FunctionArn: functionArn(r.tenant, r.name, alias ?? r.version),
    Runtime: r.runtime,
    Role: `arn:aws:iam::${r.tenant}:role/kiln`,
    Handler: r.handler,
    CodeSize: r.codeSize,
    Description: r.description,
    Timeout: r.timeout,
    MemorySize: r.memorySize,
    LastModified: lambdaTime(r.lastModified),
    CodeSha256: r.codeSha256,
    Version: r.version,
    Environment: { Variables: r.environment },
    RevisionId: r.revisionId,
    State: 'Active',
    LastUpdateStatus: 'Successful',
    PackageType: 'Zip',
    Architectures: ['x86_64'],
    EphemeralStorage: { Size: r.ephemeralStorageMB ?? 512 },
  };
}

/**
 * The configuration fields of CreateFunction/UpdateFunctionConfiguration that Kiln uses.
 * Others (Role, VpcConfig, Layers, ...) are accepted and ignored so that tools which
 * always send them keep working.
 */
export const ConfigInput = z
  .object({
    Runtime: z.string().optional(),
    Handler: z.string().optional(),
    Description: z.string().optional(),
    Timeout: z.number().optional(),
    MemorySize: z.number().optional(),
    EphemeralStorage: z.object({ Size: z.number() }).passthrough().optional(),
    Environment: z.object({ Variables: z.record(z.string()).optional() }).optional(),
    PackageType: z.enum(['Zip', 'Image']).optional(),
    /** Kiln extension: the template to run on. */
    KilnTemplate: z.string().optional(),
    /** Kiln extension: retries of failed async invocations (Lambda sets this with PutFunctionEventInvokeConfig). */
    MaximumRetryAttempts: z.number().optional(),
    /** Update only if $LATEST is still this revision (412 PreconditionFailedException otherwise). */
    RevisionId: z.string().optional(),
  })
  .passthrough();

/** CreateFunction's Tags (functions/settings.ts checks them further). */
const TagsShape = z.record(z.unknown());

export const CreateInput = ConfigInput.extend({
  FunctionName: z.string(),
  Tags: TagsShape.optional(),
  Code: z.object({ ZipFile: z.string().optional(), S3Bucket: z.string().optional(), ImageUri: z.string().optional() }).passthrough(),
  Publish: z.boolean().optional(),
});

export const CodeInputShape = z
  .object({ ZipFile: z.string().optional(), S3Bucket: z.string().optional(), ImageUri: z.string().optional(), Publish: z.boolean().optional(), RevisionId: z.string().optional() })
  .passthrough();

export const PublishInput = z.object({ Description: z.string().optional(), CodeSha256: z.string().optional(), RevisionId: z.string().optional() }).passthrough();

export function settingsOf(input: z.infer<typeof ConfigInput>): FunctionSettings {
  if (input.PackageType === 'Image') throw new ValidationError('PackageType Image is not supported; use Zip', { field: 'PackageType' });
  const s: FunctionSettings = {};
  if (input.Runtime !== undefined) s.runtime = input.Runtime;
  if (input.Handler !== undefined) s.handler = input.Handler;
  if (input.Description !== undefined) s.description = input.Description;
  if (input.Timeout !== undefined) s.timeout = input.Timeout;
  if (input.MemorySize !== undefined) s.memorySize = input.MemorySize;
  if (input.EphemeralStorage !== undefined) s.ephemeralStorageMB = input.EphemeralStorage.Size;
  if (input.Environment) s.environment = input.Environment.Variables ?? {};
  if (input.KilnTemplate !== undefined) s.template = input.KilnTemplate;
  if (input.MaximumRetryAttempts !== undefined) s.maxRetryAttempts = input.MaximumRetryAttempts;
  return s;
}

/** Parses a JSON body with a schema; bad JSON and bad fields become Lambda's own exceptions. */
export function parseBody<T extends z.ZodTypeAny>(schema: T, text: string): z.infer<T> {
  let value: unknown;
  try {
    value = text.trim() ? JSON.parse(text) : {};
  } catch {
    throw new InvalidPayloadError('request body is not valid JSON');
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ValidationError(`${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}`, { field: issue?.path.join('.') });
  }
  return parsed.data as z.infer<T>;
}

/**
 * A function error's payload as each AWS runtime writes it: Node's runtime interface client sends
 * `{errorType, errorMessage, trace}`; Python's `{errorMessage, errorType, requestId, stackTrace}`
 * (in that order); custom runtimes get what Kiln's Runtime API received, in Node's shape.
 */
export function functionErrorPayload(runtime: string, requestId: string, e: LambdaError | undefined, status: string): object {
  const errorType = e?.errorType ?? 'Unknown';
  const errorMessage = e?.errorMessage ?? status;
  if (runtime.startsWith('python')) return { errorMessage, errorType, requestId, stackTrace: e?.stackTrace ?? [] };
  return { errorType, errorMessage, trace: e?.stackTrace ?? [] };
}

/** The function (and qualifier: `?Qualifier=` or `name:qualifier`) a Lambda API route's `:name` names. */
export function lambdaTarget(c: Context): { fn: FunctionRef; qualifier?: string } {
  const parsed = parseFunctionName(c.req.param('name') ?? '');
  const qualifier = c.req.query('Qualifier') ?? parsed.qualifier;
  return { fn: { name: parsed.name, tenant: parsed.tenant }, ...(qualifier ? { qualifier } : {}) };
}

/** Lambda's `MaxItems` paging parameter, bounded as each operation bounds it. */
export function maxItemsOf(c: Context, max: number): number | undefined {
  const raw = c.req.query('MaxItems');
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new ValidationError(`MaxItems must be an integer between 1 and ${max}; got "${raw.slice(0, 20)}"`, { field: 'MaxItems' });
  return n;
}
