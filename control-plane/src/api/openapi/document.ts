import type { OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from '../router.js';
import { e2bErrorExamples, kilnErrorExamples } from './errors.js';
import { derivedOperationId, OPERATION_IDS } from './operation-ids.js';
import { EXTRA_SCHEMAS, extraPaths } from './surfaces.js';

export type OpenApiDocument = ReturnType<OpenAPIHono<AppEnv>['getOpenAPI31Document']>;
/** A JSON object of the document, walked by key. */
type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj | undefined => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : undefined);
/** The object at `key` of `parent`, made when missing. */
const child = (parent: Obj, key: string): Obj => (parent[key] = obj(parent[key]) ?? {});

/** Routes anyone may call (the authentication middleware skips them, app.ts). */
const PUBLIC = new Set(['GET /api/v1/health', 'GET /e2b/health']);
const KEY_SECURITY = [{ bearer: [] }, { apiKey: [] }];
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'options', 'head'];

const TAGS = [
  { name: 'sessions', description: 'Long-lived sandboxes leased to a client: create, list (filter by template and `metadata.<key>`), keep alive, delete.' },
  { name: 'processes', description: 'Processes in a session: run to completion, stream output (NDJSON), start in the background, stdin, signals.' },
  { name: 'files', description: 'A session\'s files: read, write (streamed, any size the workspace holds), list, stat, mkdir, rename, remove, tar in and out.' },
  { name: 'code', description: 'Stateful code contexts (Jupyter-style) in a code-interpreter session.' },
  { name: 'pty', description: 'An interactive terminal over a WebSocket.' },
  { name: 'functions', description: 'Lambda-style functions: create, version, alias, invoke, dead letters.' },
  { name: 'executions', description: 'Ad-hoc code executions and the execution history.' },
  { name: 'templates', description: 'What sandboxes are made from. Reading is for every key; changes need an administrator key.' },
  { name: 'admin', description: 'Tenants, their API keys, quotas and egress secrets. Administrator keys only.' },
  { name: 'health', description: 'Liveness of the control plane, Redis and the executors.' },
  {
    name: 'lambda',
    description: 'The AWS Lambda API, for the AWS SDKs and CLI (endpoint: this server). AWS\'s API reference is the spec for every shape; each operation links its page.',
    externalDocs: { description: 'AWS Lambda API reference', url: 'https://docs.aws.amazon.com/lambda/latest/api/welcome.html' },
  },
  {
    name: 'mcp',
    description: 'The Model Context Protocol over streamable HTTP, one endpoint per tool profile. Use an MCP client.',
    externalDocs: { description: 'MCP specification', url: 'https://modelcontextprotocol.io/specification' },
  },
  {
    name: 'e2b',
    description: 'E2B-compatible routes for E2B\'s SDKs (set E2B_API_URL to `<kiln>/e2b` and the sandbox URL to `<kiln>/e2b/sandbox`). E2B\'s OpenAPI spec is the reference; Kiln answers the operations listed here and 501 for the rest.',
    externalDocs: { description: 'E2B OpenAPI spec', url: 'https://github.com/e2b-dev/E2B/blob/main/spec/openapi.yml' },
  },
];

/** The first path segment after /api/v1 (or the surface), which picks the 404/409 examples. */
function resourceOf(path: string): string {
  const m = /^\/api\/v1\/([^/]+)/.exec(path);
  return m?.[1] ?? path.split('/')[1] ?? '';
}

/** Puts distinct examples on every error response whose body is Kiln's (or E2B's) error shape. */
function addErrorExamples(path: string, op: Obj): void {
  for (const [status, response] of Object.entries(obj(op.responses) ?? {})) {
    const media = obj(obj(obj(response)?.content)?.['application/json']);
    const ref = obj(media?.schema)?.$ref;
    if (!media || media.examples || media.example) continue;
    const examples = ref === '#/components/schemas/Error' ? kilnErrorExamples(status, resourceOf(path)) : ref === '#/components/schemas/E2BError' ? e2bErrorExamples(status) : undefined;
    if (examples) media.examples = examples;
  }
}

/**
 * Everything the generated document lacks and a client generator needs, in one place (so the
 * route files stay thin): operation ids, security, servers, license, tags, error examples, the
 * invocation body, the metadata filter and the surfaces that are not zod-openapi routes.
 * Pure: the same routes give the same document, so SDK types can be generated from it offline.
 */
export function finishDocument(generated: OpenApiDocument): OpenApiDocument {
  const doc = structuredClone(generated) as unknown as Obj;
  doc.info = { ...obj(doc.info), license: { name: 'Apache-2.0', identifier: 'Apache-2.0' } };
  // Relative: the server that served this document (the docs page's Try-it-out goes there too).
  doc.servers = [{ url: '/', description: 'This Kiln server (default http://127.0.0.1:8080: KILN_HOST, KILN_PORT)' }];
  doc.tags = TAGS;
  const components = child(doc, 'components');
  components.securitySchemes = {
    bearer: { type: 'http', scheme: 'bearer', description: 'A Kiln API key as `Authorization: Bearer <key>`' },
    apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key', description: 'A Kiln API key as `x-api-key: <key>` (E2B\'s SDKs send it as X-API-KEY)' },
    sigv4: { type: 'apiKey', in: 'header', name: 'Authorization', description: 'AWS Signature Version 4 (the AWS SDKs and CLI), with a Kiln API key id as the access key id. Lambda routes only' },
    e2bAccessToken: { type: 'apiKey', in: 'header', name: 'X-Access-Token', description: 'The sandbox access token E2B\'s create/connect return (`envdAccessToken`); E2B\'s in-sandbox routes only' },
  };
  components.schemas = { ...obj(components.schemas), ...EXTRA_SCHEMAS };
  doc.security = KEY_SECURITY;
  delete doc.webhooks;
  const paths: Obj = { ...obj(doc.paths), ...extraPaths() };
  doc.paths = paths;

  for (const [path, item] of Object.entries(paths)) {
    for (const method of METHODS) {
      const op = obj(obj(item)?.[method]);
      if (!op) continue;
      const key = `${method.toUpperCase()} ${path}`;
      op.operationId ??= OPERATION_IDS[key] ?? derivedOperationId(method, path);
      op.security ??= PUBLIC.has(key) ? [] : KEY_SECURITY;
      const responses = child(op, 'responses');
      if (!PUBLIC.has(key) && !responses['401']) {
        const schema = path.startsWith('/e2b/') ? '#/components/schemas/E2BError' : '#/components/schemas/Error';
        responses['401'] = { description: 'No API key, or an unknown one (only when the deployment has keys)', content: { 'application/json': { schema: { $ref: schema } } } };
      }
      addErrorExamples(path, op);
    }
  }

  const invoke = obj(obj(paths['/api/v1/functions/{name}/invocations'])?.post);
  if (invoke) {
    invoke.requestBody ??= {
      required: false,
      description: 'The event: any JSON value, at most 512 levels deep; an empty body is `{}`. At most 6 MB (RequestResponse) or 1 MB (Event).',
      content: { 'application/json': { schema: { description: 'Any JSON value' }, example: { a: 1, b: 2 } } },
    };
  }

  const list = obj(obj(paths['/api/v1/sessions'])?.get);
  if (list) {
    list.parameters = [
      ...(Array.isArray(list.parameters) ? (list.parameters as unknown[]) : []),
      {
        name: 'metadata',
        in: 'query',
        required: false,
        style: 'deepObject',
        explode: true,
        schema: { type: 'object', additionalProperties: { type: 'string' } },
        description: 'Only sessions whose metadata has every given key and value: `metadata[owner]=alice` (deepObject), or the same as `metadata.owner=alice`',
        example: { owner: 'alice' },
      },
    ];
  }
  return doc as unknown as OpenApiDocument;
}

/** The document for `app`, built once on first use (its routes do not change after start-up). */
export function documentOf(app: OpenAPIHono<AppEnv>): () => OpenApiDocument {
  let doc: OpenApiDocument | undefined;
  return () =>
    (doc ??= finishDocument(
      app.getOpenAPI31Document({
        openapi: '3.1.0',
        info: { title: 'Kiln API', version: '0.1.0', description: 'Run untrusted code: Lambda-style functions and long-lived sandboxes.' },
      }),
    ));
}
