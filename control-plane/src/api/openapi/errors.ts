/** An OpenAPI Example Object. */
export interface ExampleObject {
  summary: string;
  value: unknown;
}

type Examples = Record<string, ExampleObject>;
const kiln = (code: string, message: string, data?: Record<string, unknown>): ExampleObject => ({
  summary: code,
  value: { error: { code, message, ...(data ? { data } : {}) } },
});

/** 404 codes by the first path segment after /api/v1: each resource names its own. */
const NOT_FOUND: Record<string, Examples> = {
  sessions: {
    SessionNotFound: kiln('SessionNotFound', 'session "7d1f0c9a" does not exist', { sessionId: '7d1f0c9a' }),
    FileNotFound: kiln('FileNotFound', 'file "/workspace/missing.txt" does not exist', { fileId: '/workspace/missing.txt' }),
    TemplateNotFound: kiln('TemplateNotFound', 'template "gpu" does not exist; known templates: nodejs, python, shell', { template: 'gpu' }),
  },
  functions: {
    FunctionNotFound: kiln('FunctionNotFound', 'function "hello" does not exist', { functionId: 'hello' }),
    AliasNotFound: kiln('AliasNotFound', 'alias "live" of function "hello" does not exist'),
  },
  executions: { ExecutionNotFound: kiln('ExecutionNotFound', 'execution "0b6c..." does not exist', { executionId: '0b6c...' }) },
  templates: { TemplateNotFound: kiln('TemplateNotFound', 'template "gpu" does not exist; known templates: nodejs, python, shell', { template: 'gpu' }) },
  admin: { TenantNotFound: kiln('TenantNotFound', 'tenant "acme" does not exist', { tenantId: 'acme' }) },
};

const CONFLICT: Record<string, Examples> = {
  sessions: { SessionBusy: kiln('SessionBusy', 'session "7d1f0c9a" is running another execute call; wait for it to finish', { sessionId: '7d1f0c9a' }) },
  functions: {
    FunctionExists: kiln('FunctionExists', 'function "hello" already exists; use PUT /api/v1/functions/hello to change it'),
    FunctionConflict: kiln('FunctionConflict', 'function "hello" was changed concurrently; retry'),
  },
  templates: { TemplateInUse: kiln('TemplateInUse', 'template "nodejs" is in use (2 queued or running jobs, 1 leased sandboxes); retry when it is idle') },
  admin: { TenantExists: kiln('TenantExists', 'tenant "acme" already exists') },
};

/** Examples of Kiln's error body for one status, for an operation under `resource`; each a different condition. */
export function kilnErrorExamples(status: string, resource: string): Examples | undefined {
  switch (status) {
    case '400':
      return {
        InvalidRequest: kiln('InvalidRequest', 'timeoutMs: Number must be greater than or equal to 100', { issues: [{ path: 'timeoutMs', message: 'Number must be greater than or equal to 100' }] }),
        InvalidJSON: kiln('InvalidJSON', 'request body is not valid JSON'),
      };
    case '401':
      return { Unauthorized: kiln('Unauthorized', 'this endpoint needs an API key: send "Authorization: Bearer <key>" or "x-api-key: <key>"') };
    case '403':
      return { Forbidden: kiln('Forbidden', 'this key (k_1a2b) does not have the "admin" scope this request needs', { scope: 'admin', keyId: 'k_1a2b' }) };
    case '404':
      return NOT_FOUND[resource] ?? { NotFound: kiln('NotFound', 'the resource does not exist (another tenant\'s is unknown too)') };
    case '409':
      return CONFLICT[resource] ?? { Conflict: kiln('Conflict', 'the resource was changed concurrently; retry') };
    case '410':
      return { SessionLost: kiln('SessionLost', 'session "7d1f0c9a" was lost (executor exited); its processes and files are gone. Create a new session', { sessionId: '7d1f0c9a', reason: 'executor exited' }) };
    case '412':
      return { PreconditionFailed: kiln('PreconditionFailed', 'revisionId "3" does not match the current revision "4"; read it again') };
    case '413':
      return { PayloadTooLarge: kiln('PayloadTooLarge', 'request body is larger than 6291456 bytes', { maxBytes: 6291456 }) };
    case '429':
      return {
        QuotaExceeded: kiln('QuotaExceeded', 'tenant "acme" is at its requestsPerSecond quota (20); retry after 1 s', { quota: 'requestsPerSecond', limit: 20, retryAfterSeconds: 1 }),
        TooManyRequests: kiln('TooManyRequests', 'the queue of template "nodejs" is full; retry after 1 s', { template: 'nodejs', retryAfterSeconds: 1 }),
      };
    case '503':
      return {
        ServiceUnavailable: kiln('ServiceUnavailable', 'redis is unavailable: Connection is closed; retry shortly', { what: 'redis', retryAfterSeconds: 1 }),
        NoCapacity: kiln('NoCapacity', 'no sandbox of template "nodejs" became free within 30000 ms', { template: 'nodejs' }),
      };
    default:
      return undefined;
  }
}

/** E2B's error body (`{code, message}`), as E2B's SDKs read it. */
export function e2bErrorExamples(status: string): Examples | undefined {
  const e2b = (summary: string, message: string): Examples => ({ [summary]: { summary, value: { code: Number(status), message } } });
  switch (status) {
    case '400':
      return e2b('BadRequest', 'templateID is required');
    case '401':
      return e2b('Unauthorized', 'this endpoint needs a Kiln API key: set E2B_API_KEY (sent as X-API-KEY)');
    case '404':
      return e2b('SandboxNotFound', 'sandbox "7d1f0c9a" not found');
    case '409':
      return e2b('Conflict', 'pausing sandboxes is not supported by this Kiln deployment');
    case '429':
      return e2b('RateLimited', 'tenant "acme" is at its requestsPerSecond quota (20); retry after 1 s');
    default:
      return undefined;
  }
}
