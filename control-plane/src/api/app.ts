import type { OpenAPIHono } from '@hono/zod-openapi';
import { CODE_LINK_PREFIX, type CodeLinks } from '../functions/code-links.js';
import type { Redis } from 'ioredis';
import type { Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { AgentPool } from '../agent/client.js';
import type { ExecutionService } from '../executions/service.js';
import type { ExecutorDirectory } from '../scheduler/records.js';
import type { TemplateRegistry } from '../templates/registry.js';
import { docsRoutes } from './docs.js';
import { documentOf } from './openapi/document.js';
import { errorBody, onError } from './errors.js';
import { newRouter, type AppEnv } from './router.js';
import { executionRoutes } from './routes/executions.js';
import { aliasRoutes } from './routes/aliases.js';
import { functionRoutes } from './routes/functions.js';
import { lambdaRoutes } from './routes/lambda.js';
import { lambdaStreamRoutes } from './routes/lambda-stream.js';
import { lambdaSettingsRoutes } from './routes/lambda-settings.js';
import type { FunctionExtras } from '../functions/settings.js';
import type { EventInvokeConfigs } from '../functions/event-invoke.js';
import { functionUrlRoutes } from './routes/function-urls.js';
import { functionUrlServer } from './routes/function-url-serve.js';
import type { FunctionUrlService } from '../functions/urls.js';
import type { FunctionInvoker } from '../functions/invoker.js';
import type { AliasService } from '../functions/aliases.js';
import type { FunctionService } from '../functions/service.js';
import { healthRoutes } from './routes/health.js';
import type { TemplateAdmin } from '../templates/admin.js';
import type { KilnMetrics } from '../metrics/kiln.js';
import { redisGuard } from './redis-guard.js';
import { jsonDepthGuard } from './json-depth.js';
import { browserGuard, browserPolicy, lambdaContentType, type BrowserPolicy } from './origin.js';
import { textBody } from './text-body.js';
import { metricsRoutes } from './routes/metrics.js';
import { templateRoutes } from './routes/templates.js';
import { adminRoutes } from './routes/admin.js';
import { sessionRoutes } from './routes/sessions.js';
import { volumeRoutes } from './routes/volumes.js';
import { sessionVolumeRoutes } from './routes/session-volumes.js';
import type { VolumeService } from '../volumes/service.js';
import { sessionFileRoutes } from './routes/sessions-files.js';
import { sessionProcessIoRoutes } from './routes/sessions-process-io.js';
import { E2B_PREFIX, mountE2b } from './e2b/index.js';
import { e2bError } from './e2b/errors.js';
import { sessionNetworkRoutes } from './routes/session-network.js';
import { EgressService } from '../egress/service.js';
import type { SecretStore } from '../egress/secrets.js';
import type { EgressGrants } from '../egress/grants.js';
import { egressGrantRoutes } from './routes/egress-grants.js';
import { egressSecretRoutes } from './routes/egress-secrets.js';
import { observabilityRoutes } from './routes/observability.js';
import { ptyTicketRoutes } from './routes/sessions-pty-ticket.js';
import type { PtyTickets } from '../sessions/pty-tickets.js';
import { consoleRoutes } from './console.js';
import type { FunctionStats } from '../observability/function-stats.js';
import type { PoolsView } from '../observability/pools.js';
import type { SessionUsageReader } from '../observability/session-usage.js';
import { sessionCodeRoutes } from './routes/sessions-code.js';
import { CodeInterpreterService } from '../interpreter/service.js';
import type { SessionService } from '../sessions/service.js';
import type { SessionLifecycle } from '../sessions/lifecycle.js';
import type { SnapshotService } from '../sessions/snapshots.js';
import { sessionLifecycleRoutes } from './routes/sessions-lifecycle.js';
import type { McpEndpoint } from '../mcp/http.js';
import { authenticate, requireSigV4OrApiKey } from './auth.js';
import { requireRouteScope } from './scopes.js';
import type { Keyring } from '../tenancy/keyring.js';
import type { Quotas } from '../tenancy/quotas.js';
import { lambdaError, onLambdaError } from './lambda/errors.js';

/** The Lambda API's paths: each operation family under a dated version (/2015-03-31/functions, /2017-03-31/tags, ...). */
const LAMBDA_API_PATH = /^\/20\d\d-\d\d-\d\d\//;
/**
 * Lambda API families beyond /2015-03-31 (functions) and /2021-10-31 (function URLs), guarded the
 * same way: InvokeWithResponseStream, tags, concurrency, account settings, event invoke config.
 */
const MORE_LAMBDA_FAMILIES = ['/2021-11-15/*', '/2017-03-31/*', '/2017-10-31/*', '/2019-09-30/*', '/2016-08-19/*', '/2019-09-25/*'];
import { rateLimit, TokenBuckets } from './rate-limit.js';
import { publicLinkRate } from './link-rate.js';
import { idempotentCreate } from './idempotent-create.js';
import type { Keys } from '../store/keys.js';
import type { S3CodeSource } from '../functions/s3-code.js';
import { fileLinkRoutes } from './routes/file-links.js';
import { UploadSlots } from './upload-slots.js';
import { FILE_LINK_PREFIX, type FileLinks } from '../sessions/file-links.js';

export interface AppDeps {
  redis: Redis;
  executions: ExecutionService;
  executors: ExecutorDirectory;
  agents: AgentPool;
  templates: TemplateRegistry;
  maxBodyBytes: number;
  /** One file's largest size through the sessions' files API (KILN_MAX_FILE_BYTES); default maxBodyBytes. */
  maxFileBytes?: number;
  templateAdmin?: TemplateAdmin;
  metrics?: KilnMetrics;
  functions?: { service: FunctionService; invoker: FunctionInvoker; aliases: AliasService; extras?: FunctionExtras; eventConfigs?: EventInvokeConfigs; codeLinks?: CodeLinks; s3Code?: S3CodeSource };
  sessions?: SessionService;
  /** Pause, resume, hibernation, snapshots and forks of sessions. */
  sessionLifecycle?: { lifecycle: SessionLifecycle; snapshots: SnapshotService };
  /** Function URLs: the config API (/2021-10-31) and the URLs themselves; needs `functions`. */
  functionUrls?: FunctionUrlService;
  /** MCP over streamable HTTP at /mcp/{profile}. */
  mcp?: McpEndpoint;
  /** Who a key is (environment and stored keys); with no environment keys every endpoint is open. */
  keyring: Keyring;
  /** Tenants' quotas: the request rate is counted here (rate-limit.ts), the rest by the services. */
  quotas?: Pick<Quotas, 'limits' | 'rateExceeded'>;
  /** Which hosts and page origins browsers may use Kiln from; absent: loopback names only. */
  browser?: BrowserPolicy;
  /** The deployment's Redis keys; absent: creates ignore Idempotency-Key. */
  keys?: Keys;
  /** Signed file URLs (sessions/file-links.ts); needs `sessions`. */
  fileLinks?: FileLinks;
  /** Uploads one tenant streams at once (KILN_MAX_UPLOADS_PER_TENANT). */
  maxUploadsPerTenant?: number;
  /** Requests a second per client address on the public link routes (KILN_PUBLIC_LINK_RPS). */
  publicLinkRps?: number;
  /** Tenants' egress secrets (egress/secrets.ts); absent: no secret routes. */
  egressSecrets?: SecretStore;
  /** Tenants' egress grants (egress/grants.ts); with it, session policies may widen within them. */
  egressGrants?: EgressGrants;
  /** Sessions' usage, functions' figures and the pools' state (observability/); absent: no such routes. */
  observability?: { pools: PoolsView; functionStats?: FunctionStats; sessionUsage?: SessionUsageReader };
  /** Terminal tickets for browsers (sessions/pty-tickets.ts); absent: terminals take keys only. */
  ptyTickets?: PtyTickets;
  /** The web console's built files (console/dist); absent or missing: `/` says how to build it. */
  consoleDir?: string;
  /** Named volumes (volumes/service.ts); absent: no volume routes. */
  volumes?: VolumeService;
}

/**
 * The REST API. Validation failures, malformed JSON and oversized bodies all come back as
 * the same error body with a code, so clients handle one shape.
 */
export function createApp(deps: AppDeps): OpenAPIHono<AppEnv> {
  const app = newRouter();
  app.onError(onError);
  app.notFound((c) =>
    // A Lambda API operation Kiln does not implement: an error the AWS SDK can name (it reads
    // x-amzn-ErrorType), not a body it can only report as UnknownError.
    LAMBDA_API_PATH.test(c.req.path)
      ? lambdaError(c, 'UnknownOperationException', 404, `Kiln does not implement the Lambda operation ${c.req.method} ${c.req.path.slice(0, 200)}`)
      : c.req.path.startsWith(`${E2B_PREFIX}/`)
        ? e2bError(c, 501, `Kiln does not implement the E2B operation ${c.req.method} ${c.req.path.slice(0, 200)}`)
        : c.json(errorBody('RouteNotFound', `no route for ${c.req.method} ${c.req.path}`), 404),
  );
  // One bucket per tenant for every surface, counted by this replica (rate-limit.ts).
  const buckets = new TokenBuckets();
  // Function URLs (/lambda-url/<id>/..., or Host <id>.lambda-url.*) are answered here in full and
  // never reach what follows: they are public by design (their auth type and CORS config are
  // theirs), so the browser policy below would only break them, and skipping it opens nothing else.
  const urls = deps.functions ? deps.functionUrls : undefined;
  if (deps.functions && urls) {
    app.use('*', functionUrlServer({ urls, invoker: deps.functions.invoker, keyring: deps.keyring, ...(deps.quotas ? { rate: { quotas: deps.quotas, buckets } } : {}) }));
  }
  // The public link routes (no key) are paced per client address before anything else is done
  // for them (link-rate.ts), with buckets of their own.
  const linkBuckets = new TokenBuckets();
  const linkRate = publicLinkRate(linkBuckets, deps.publicLinkRps ?? 20);
  app.use(`${CODE_LINK_PREFIX}*`, linkRate);
  app.use(`${FILE_LINK_PREFIX}*`, linkRate);
  // First of all: a page in a browser that is not Kiln's own gets nothing, whatever it sends.
  app.use('*', browserGuard(deps.browser ?? browserPolicy('127.0.0.1', [], [])));
  // Before body limits and Redis checks, so a caller without a key learns nothing else.
  const publicPath = (path: string): boolean => path === '/api/v1/health' || path === '/api/v1/openapi.json' || path.startsWith(CODE_LINK_PREFIX) || path.startsWith(FILE_LINK_PREFIX);
  app.use('/api/v1/*', authenticate(deps.keyring, publicPath));
  // Then the key's scopes against the route's (scopes.ts): templates and tenants are the
  // deployment's, changed by administrators only; each tenant's resources are checked for
  // ownership by the services that hold them.
  app.use('/api/v1/*', requireRouteScope('kiln', publicPath));
  app.use('/mcp/*', authenticate(deps.keyring));
  // The deployment's figures name templates (and tenants): administrators only, once keys exist.
  app.use('/metrics', authenticate(deps.keyring), requireRouteScope());
  app.use('/2015-03-31/*', requireSigV4OrApiKey(deps.keyring));
  app.use('/2015-03-31/*', requireRouteScope('lambda'));
  app.use('/2015-03-31/*', lambdaContentType());
  app.use('/2021-10-31/*', requireSigV4OrApiKey(deps.keyring));
  app.use('/2021-10-31/*', requireRouteScope('lambda'));
  app.use('/2021-10-31/*', lambdaContentType());
  for (const family of MORE_LAMBDA_FAMILIES) app.use(family, requireSigV4OrApiKey(deps.keyring), requireRouteScope('lambda'), lambdaContentType());
  // Each tenant's request rate, once the request's principal is known (one bucket per tenant
  // for every surface, counted by this replica).
  if (deps.quotas) {
    const rest = rateLimit(deps.quotas, buckets, onError);
    app.use('/api/v1/*', rest);
    app.use('/mcp/*', rest);
    app.use('/2015-03-31/*', rateLimit(deps.quotas, buckets, onLambdaError));
    app.use('/2021-10-31/*', rateLimit(deps.quotas, buckets, onLambdaError));
    for (const family of MORE_LAMBDA_FAMILIES) app.use(family, rateLimit(deps.quotas, buckets, onLambdaError));
  }

  const tooLarge = (c: Context): Response =>
    c.json(errorBody('PayloadTooLarge', `request body is larger than ${deps.maxBodyBytes} bytes`, { maxBytes: deps.maxBodyBytes }), 413);
  const fallback = bodyLimit({ maxSize: deps.maxBodyBytes, onError: tooLarge });
  // The hot route reads its JSON body straight from Node's request (text-body.ts explains why).
  const hot = (method: string, path: string): boolean => method === 'POST' && path === '/api/v1/executions';
  const upload = (method: string, path: string): boolean => method === 'PUT' && (/^\/api\/v1\/sessions\/[^/]+\/files(\/tar)?$/.test(path) || path.startsWith(FILE_LINK_PREFIX));
  app.use('/api/*', textBody({ maxBytes: deps.maxBodyBytes, tooLarge, fallback, hot, streamed: upload }));
  // Inside the body limit above (its `next`). The Lambda routes keep events as text; the
  // invoker checks their depth (invocation/request.ts), as for every surface that takes one.
  app.use('/api/*', jsonDepthGuard((method, path) => hot(method, path) || upload(method, path)));
  app.use('/api/v1/*', redisGuard(deps.redis));
  // Idempotency-Key on creates (idempotent-create.ts), inside every check above.
  if (deps.keys) {
    app.use('/api/v1/sessions', idempotentCreate(deps.redis, deps.keys, 'session'));
    app.use('/api/v1/functions', idempotentCreate(deps.redis, deps.keys, 'function'));
    app.use('/api/v1/volumes', idempotentCreate(deps.redis, deps.keys, 'volume'));
  }
  app.route('/', executionRoutes(deps.executions));
  if (deps.functions) app.route('/', functionRoutes(deps.functions.service, deps.functions.invoker));
  if (deps.functions) app.route('/', aliasRoutes(deps.functions.aliases));
  // Lambda's paths sit outside /api/*, so they carry their own Lambda-shaped body limits.
  if (deps.functions) app.route('/', lambdaRoutes(deps.functions.service, deps.functions.invoker, deps.functions.aliases, deps.redis, deps.functions.extras, deps.functions.codeLinks, deps.functions.s3Code));
  // GetFunction's Code.Location: signed, so without a key (functions/code-links.ts).
  if (deps.functions?.codeLinks) app.route('/', deps.functions.codeLinks.routes());
  if (deps.functions) app.route('/', lambdaStreamRoutes(deps.functions.invoker, deps.redis));
  if (deps.functions?.extras) app.route('/', lambdaSettingsRoutes(deps.functions.extras, deps.functions.eventConfigs, deps.redis));
  if (deps.templateAdmin) app.route('/', templateRoutes(deps.templateAdmin));
  if (urls) app.route('/', functionUrlRoutes(urls, deps.redis));
  app.route('/', adminRoutes(deps.keyring));
  if (deps.metrics) app.route('/', metricsRoutes(deps.metrics, deps.redis));
  if (deps.sessions) app.route('/', sessionRoutes(deps.sessions, deps.sessionLifecycle?.snapshots));
  if (deps.volumes) app.route('/', volumeRoutes(deps.volumes));
  if (deps.volumes && deps.sessions) app.route('/', sessionVolumeRoutes(deps.sessions));
  if (deps.sessionLifecycle) app.route('/', sessionLifecycleRoutes(deps.sessionLifecycle.lifecycle, deps.sessionLifecycle.snapshots));
  const uploads = new UploadSlots(deps.maxUploadsPerTenant ?? 16);
  if (deps.sessions) app.route('/', sessionFileRoutes(deps.sessions, deps.maxFileBytes ?? deps.maxBodyBytes, uploads));
  if (deps.sessions && deps.fileLinks) app.route('/', fileLinkRoutes(deps.sessions, deps.fileLinks, deps.maxFileBytes ?? deps.maxBodyBytes, uploads));
  if (deps.sessions) app.route('/', sessionProcessIoRoutes(deps.sessions));
  // E2B's SDKs (api/e2b/): its control API and the sandbox routes, with E2B's own error shapes.
  if (deps.sessions) mountE2b(app, { sessions: deps.sessions, templates: deps.templates, ...(deps.sessionLifecycle ? { lifecycle: deps.sessionLifecycle.lifecycle } : {}), keyring: deps.keyring, uploads, ...(deps.quotas ? { rate: { quotas: deps.quotas, buckets } } : {}) });
  if (deps.sessions) app.route('/', sessionNetworkRoutes(new EgressService(deps.sessions, deps.templates, deps.egressSecrets, deps.egressGrants)));
  if (deps.egressSecrets) app.route('/', egressSecretRoutes(deps.egressSecrets));
  if (deps.egressGrants) app.route('/', egressGrantRoutes(deps.egressGrants));
  if (deps.sessions) app.route('/', sessionCodeRoutes(new CodeInterpreterService(deps.sessions)));
  if (deps.observability) {
    const o = deps.observability;
    app.route('/', observabilityRoutes({ pools: o.pools, ...(o.sessionUsage ? { usage: o.sessionUsage } : {}), ...(o.functionStats && deps.functions ? { functionStats: { stats: o.functionStats, functions: deps.functions.service } } : {}) }));
  }
  if (deps.sessions && deps.ptyTickets) app.route('/', ptyTicketRoutes(deps.sessions, deps.ptyTickets));
  if (deps.mcp) app.route('/', deps.mcp.routes);
  app.route('/', healthRoutes(deps));
  // The generated document, completed for client generators (openapi/document.ts).
  const document = documentOf(app);
  app.get('/api/v1/openapi.json', (c) => c.json(document()));
  app.route('/', docsRoutes('/api/v1/openapi.json'));
  // Last: the console answers `/` and its own files, and every path a route above did not take
  // that a browser navigates to (its client-side routes), never /api, /mcp or Lambda's.
  if (deps.consoleDir !== undefined) app.route('/', consoleRoutes(deps.consoleDir));
  return app;
}
