import { PROFILE_NAMES } from '../../mcp/profiles.js';

/**
 * The surfaces that are not zod-openapi routes, described by hand so that the one document
 * covers everything a client can call: the Lambda API (AWS's shapes; AWS's reference is the
 * spec, linked per operation), MCP over streamable HTTP, the PTY WebSocket, and E2B's in-sandbox
 * routes (E2B's own spec). Kept next to document.ts; the routes themselves live in api/routes,
 * api/e2b and mcp/. Each operation carries `x-kiln-surface` (lambda, mcp, pty, e2b-sandbox): not
 * a zod-openapi route, with its own protocol and its own tests.
 */

const AWS = 'https://docs.aws.amazon.com/lambda/latest/api/API_';
const lambdaError = {
  description: 'A Lambda-shaped error: the AWS SDK reads its class from `x-amzn-ErrorType` (ResourceNotFoundException, InvalidParameterValueException, TooManyRequestsException, ...)',
  headers: { 'x-amzn-ErrorType': { schema: { type: 'string' }, description: 'The error class, e.g. ResourceNotFoundException' } },
  content: { 'application/json': { schema: { $ref: '#/components/schemas/LambdaServiceError' } } },
};
const name = { name: 'name', in: 'path', required: true, schema: { type: 'string' }, description: 'Function name or ARN' };
const json = { 'application/json': { schema: { type: 'object', additionalProperties: true } } };

interface LambdaOp {
  method: 'get' | 'post' | 'put' | 'delete';
  path: string;
  /** AWS's operation name: the operationId (prefixed) and the reference page. */
  op: string;
  summary: string;
  body?: boolean;
  status?: number;
}

const LAMBDA_OPS: LambdaOp[] = [
  { method: 'post', path: '/2015-03-31/functions', op: 'CreateFunction', summary: 'Create a function (zip or source)', body: true, status: 201 },
  { method: 'get', path: '/2015-03-31/functions', op: 'ListFunctions', summary: 'List functions' },
  { method: 'get', path: '/2015-03-31/functions/{name}', op: 'GetFunction', summary: 'Get a function and a link to its code' },
  { method: 'delete', path: '/2015-03-31/functions/{name}', op: 'DeleteFunction', summary: 'Delete a function or a version', status: 204 },
  { method: 'get', path: '/2015-03-31/functions/{name}/configuration', op: 'GetFunctionConfiguration', summary: 'Get a function\'s configuration' },
  { method: 'put', path: '/2015-03-31/functions/{name}/configuration', op: 'UpdateFunctionConfiguration', summary: 'Change a function\'s configuration', body: true },
  { method: 'put', path: '/2015-03-31/functions/{name}/code', op: 'UpdateFunctionCode', summary: 'Replace a function\'s code', body: true },
  { method: 'post', path: '/2015-03-31/functions/{name}/versions', op: 'PublishVersion', summary: 'Publish a version', body: true, status: 201 },
  { method: 'get', path: '/2015-03-31/functions/{name}/versions', op: 'ListVersionsByFunction', summary: 'List versions' },
  { method: 'post', path: '/2015-03-31/functions/{name}/invocations', op: 'Invoke', summary: 'Invoke (RequestResponse, Event or DryRun by X-Amz-Invocation-Type)', body: true },
  { method: 'post', path: '/2015-03-31/functions/{name}/aliases', op: 'CreateAlias', summary: 'Create an alias', body: true, status: 201 },
  { method: 'get', path: '/2015-03-31/functions/{name}/aliases', op: 'ListAliases', summary: 'List aliases' },
  { method: 'get', path: '/2015-03-31/functions/{name}/aliases/{alias}', op: 'GetAlias', summary: 'Get an alias' },
  { method: 'put', path: '/2015-03-31/functions/{name}/aliases/{alias}', op: 'UpdateAlias', summary: 'Change an alias', body: true },
  { method: 'delete', path: '/2015-03-31/functions/{name}/aliases/{alias}', op: 'DeleteAlias', summary: 'Delete an alias', status: 204 },
  { method: 'post', path: '/2021-11-15/functions/{name}/response-streaming-invocations', op: 'InvokeWithResponseStream', summary: 'Invoke and stream the response (AWS event stream)', body: true },
  { method: 'post', path: '/2021-10-31/functions/{name}/url', op: 'CreateFunctionUrlConfig', summary: 'Create a function URL', body: true, status: 201 },
  { method: 'get', path: '/2021-10-31/functions/{name}/url', op: 'GetFunctionUrlConfig', summary: 'Get a function URL' },
  { method: 'put', path: '/2021-10-31/functions/{name}/url', op: 'UpdateFunctionUrlConfig', summary: 'Change a function URL', body: true },
  { method: 'delete', path: '/2021-10-31/functions/{name}/url', op: 'DeleteFunctionUrlConfig', summary: 'Delete a function URL', status: 204 },
  { method: 'get', path: '/2021-10-31/functions/{name}/urls', op: 'ListFunctionUrlConfigs', summary: 'List function URLs' },
  { method: 'put', path: '/2017-10-31/functions/{name}/concurrency', op: 'PutFunctionConcurrency', summary: 'Reserve concurrency', body: true },
  { method: 'get', path: '/2019-09-30/functions/{name}/concurrency', op: 'GetFunctionConcurrency', summary: 'Get reserved concurrency' },
  { method: 'delete', path: '/2017-10-31/functions/{name}/concurrency', op: 'DeleteFunctionConcurrency', summary: 'Remove reserved concurrency', status: 204 },
  { method: 'get', path: '/2016-08-19/account-settings', op: 'GetAccountSettings', summary: 'The tenant\'s limits and usage' },
  { method: 'put', path: '/2019-09-25/functions/{name}/event-invoke-config', op: 'PutFunctionEventInvokeConfig', summary: 'Set async invocation settings', body: true },
  { method: 'post', path: '/2019-09-25/functions/{name}/event-invoke-config', op: 'UpdateFunctionEventInvokeConfig', summary: 'Change async invocation settings', body: true },
  { method: 'get', path: '/2019-09-25/functions/{name}/event-invoke-config', op: 'GetFunctionEventInvokeConfig', summary: 'Get async invocation settings' },
  { method: 'delete', path: '/2019-09-25/functions/{name}/event-invoke-config', op: 'DeleteFunctionEventInvokeConfig', summary: 'Remove async invocation settings', status: 204 },
  { method: 'get', path: '/2019-09-25/functions/{name}/event-invoke-config/list', op: 'ListFunctionEventInvokeConfigs', summary: 'List async invocation settings' },
];

const TAG_OPS: LambdaOp[] = [
  { method: 'get', path: '/2017-03-31/tags/{arn}', op: 'ListTags', summary: 'List a function\'s tags' },
  { method: 'post', path: '/2017-03-31/tags/{arn}', op: 'TagResource', summary: 'Tag a function', body: true, status: 204 },
  { method: 'delete', path: '/2017-03-31/tags/{arn}', op: 'UntagResource', summary: 'Untag a function (tagKeys in the query)', status: 204 },
];

function lambdaOperation(o: LambdaOp): Record<string, unknown> {
  const params = [
    ...(o.path.includes('{name}') ? [name] : []),
    ...(o.path.includes('{alias}') ? [{ name: 'alias', in: 'path', required: true, schema: { type: 'string' } }] : []),
    ...(o.path.includes('{arn}') ? [{ name: 'arn', in: 'path', required: true, schema: { type: 'string' }, description: 'The function\'s ARN' }] : []),
  ];
  const status = String(o.status ?? 200);
  return {
    tags: ['lambda'],
    'x-kiln-surface': 'lambda',
    operationId: `lambda${o.op}`,
    summary: o.summary,
    description: `AWS Lambda's ${o.op}, with AWS's request and response shapes. Signed with SigV4 (the AWS SDK's and CLI's way; the access key id is a Kiln API key) or sent with a Kiln API key.`,
    externalDocs: { description: `AWS: ${o.op}`, url: `${AWS}${o.op}.html` },
    security: [{ sigv4: [] }, { bearer: [] }, { apiKey: [] }],
    ...(params.length ? { parameters: params } : {}),
    ...(o.body ? { requestBody: { required: o.op !== 'PublishVersion', content: json } } : {}),
    responses: {
      [status]: status === '204' ? { description: 'Done' } : { description: 'AWS\'s response shape', content: json },
      '400': lambdaError,
      '404': lambdaError,
      '429': lambdaError,
    },
  };
}

const SANDBOX_RPC = '/e2b/sandbox/{service}/{method}';

/** Paths to add to the document, by path and method. */
export function extraPaths(): Record<string, Record<string, unknown>> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const o of [...LAMBDA_OPS, ...TAG_OPS]) (paths[o.path] ??= {})[o.method] = lambdaOperation(o);

  const profile = { name: 'profile', in: 'path', required: true, schema: { type: 'string', enum: [...PROFILE_NAMES] }, description: `Which tool set: ${PROFILE_NAMES.join(', ')}` };
  paths['/mcp/{profile}'] = {
    post: {
      tags: ['mcp'],
      'x-kiln-surface': 'mcp',
      operationId: 'mcpPost',
      summary: 'MCP over streamable HTTP: a JSON-RPC request, notification or response',
      description: 'The Model Context Protocol\'s streamable HTTP transport (spec 2025-06-18): `initialize` starts a session and returns `Mcp-Session-Id`, which later requests send. Answers are JSON or an SSE stream, as the client\'s Accept allows. Use an MCP client (the MCP SDKs), not this page.',
      externalDocs: { description: 'MCP streamable HTTP transport', url: 'https://modelcontextprotocol.io/specification/2025-06-18/basic/transports#streamable-http' },
      parameters: [profile, { name: 'mcp-session-id', in: 'header', required: false, schema: { type: 'string' }, description: 'The session id from `initialize`' }],
      requestBody: { required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/JsonRpcMessage' }, example: { jsonrpc: '2.0', id: 1, method: 'tools/list' } } } },
      responses: {
        '200': { description: 'The JSON-RPC response, or an SSE stream of messages', content: { 'application/json': { schema: { $ref: '#/components/schemas/JsonRpcMessage' } }, 'text/event-stream': { schema: { type: 'string' } } } },
        '202': { description: 'A notification or response was accepted' },
        '401': { description: 'No key, or an unknown one', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
        '404': { description: 'Unknown profile or MCP session', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
      },
    },
    get: {
      tags: ['mcp'],
      'x-kiln-surface': 'mcp',
      operationId: 'mcpListen',
      summary: 'MCP: the server-to-client SSE stream of an MCP session',
      parameters: [profile, { name: 'mcp-session-id', in: 'header', required: true, schema: { type: 'string' } }],
      responses: { '200': { description: 'Server-sent events', content: { 'text/event-stream': { schema: { type: 'string' } } } }, '404': { description: 'Unknown MCP session' } },
    },
    delete: {
      tags: ['mcp'],
      'x-kiln-surface': 'mcp',
      operationId: 'mcpEndSession',
      summary: 'MCP: end an MCP session',
      parameters: [profile, { name: 'mcp-session-id', in: 'header', required: true, schema: { type: 'string' } }],
      responses: { '200': { description: 'Ended' }, '404': { description: 'Unknown MCP session' } },
    },
  };

  paths['/api/v1/sessions/{id}/pty'] = {
    get: {
      tags: ['pty'],
      'x-kiln-surface': 'pty',
      operationId: 'openPty',
      summary: 'An interactive terminal in the session (WebSocket)',
      description:
        'Upgrade to a WebSocket (`Connection: Upgrade`, `Upgrade: websocket`). Binary frames carry terminal bytes both ways. Text frames carry JSON control messages: ' +
        '`{"type":"resize","cols":N,"rows":N}` from the client, and `{"type":"exit","code":N}` from the server before it closes. Authenticate with `Authorization: Bearer <key>` ' +
        'or `x-api-key` on the upgrade; browsers, which cannot set headers on a WebSocket, offer the subprotocols `kiln.pty` and `kiln.ticket.<ticket>` with a one-use ticket from ' +
        '`POST /api/v1/sessions/{id}/pty-ticket`. A key in the URL (`?api_key=`) is refused (400 `KeyInUrl`): URLs end up in logs and proxies. Pages of other origins are refused (403).',
      parameters: [
        { name: 'id', in: 'path', required: true, schema: { type: 'string' } },
        { name: 'cols', in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: 1000, default: 80 } },
        { name: 'rows', in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: 1000, default: 24 } },
      ],
      responses: {
        '101': { description: 'Switching protocols: the terminal is attached' },
        '400': { description: 'Bad cols/rows, a key in the URL (`KeyInUrl`), or not a WebSocket upgrade', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
        '401': { description: 'No key, an unknown one, or a ticket that is unknown, used, expired or for another session (`TicketInvalid`)', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
        '403': { description: 'The key lacks the sessions scope, or a foreign page origin', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
        '404': { description: 'Unknown session (another tenant\'s is unknown too)', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
      },
    },
  };

  const e2bSandbox = 'Called by E2B\'s SDKs inside `Sandbox` (what E2B calls envd), authorised by the sandbox\'s access token from create/connect, not by an API key. E2B\'s spec is the reference.';
  paths['/e2b/health'] = {
    get: { tags: ['e2b'], 'x-kiln-surface': 'e2b-sandbox', operationId: 'e2bHealth', summary: 'E2B API health', security: [], responses: { '200': { description: 'OK', content: { 'application/json': { schema: { type: 'object', properties: { status: { type: 'string' } } } } } } } },
  };
  paths[SANDBOX_RPC] = {
    post: {
      tags: ['e2b'],
      'x-kiln-surface': 'e2b-sandbox',
      operationId: 'e2bSandboxRpc',
      summary: 'E2B in-sandbox Connect RPC: process.Process and filesystem.Filesystem',
      description: `${e2bSandbox} Connect protocol (JSON or binary protobuf, unary and server streaming).`,
      externalDocs: { description: 'E2B envd protocol (spec/envd)', url: 'https://github.com/e2b-dev/E2B/tree/main/spec/envd' },
      security: [{ e2bAccessToken: [] }],
      parameters: [
        { name: 'service', in: 'path', required: true, schema: { type: 'string', enum: ['process.Process', 'filesystem.Filesystem'] } },
        { name: 'method', in: 'path', required: true, schema: { type: 'string' }, example: 'Start' },
      ],
      requestBody: { required: true, content: { 'application/json': { schema: { type: 'object' } }, 'application/connect+json': { schema: { type: 'string' } }, 'application/proto': { schema: { type: 'string', format: 'binary' } } } },
      responses: { '200': { description: 'The RPC\'s answer', content: { 'application/json': { schema: { type: 'object' } }, 'application/connect+json': { schema: { type: 'string' } } } }, '401': { description: 'No or a wrong access token' }, '404': { description: 'Unknown sandbox or method' } },
    },
  };
  paths['/e2b/sandbox/files'] = {
    get: {
      tags: ['e2b'],
      'x-kiln-surface': 'e2b-sandbox',
      operationId: 'e2bDownloadFile',
      summary: 'E2B: download a file from a sandbox',
      description: e2bSandbox,
      externalDocs: { description: 'E2B envd spec', url: 'https://github.com/e2b-dev/E2B/blob/main/spec/envd/envd.yaml' },
      security: [{ e2bAccessToken: [] }],
      parameters: [{ name: 'path', in: 'query', required: true, schema: { type: 'string' } }],
      responses: { '200': { description: 'The file', content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } }, '401': { description: 'No or a wrong access token' }, '404': { description: 'No such file' } },
    },
    post: {
      tags: ['e2b'],
      'x-kiln-surface': 'e2b-sandbox',
      operationId: 'e2bUploadFile',
      summary: 'E2B: upload files into a sandbox (multipart)',
      description: e2bSandbox,
      externalDocs: { description: 'E2B envd spec', url: 'https://github.com/e2b-dev/E2B/blob/main/spec/envd/envd.yaml' },
      security: [{ e2bAccessToken: [] }],
      parameters: [{ name: 'path', in: 'query', required: false, schema: { type: 'string' } }],
      requestBody: { required: true, content: { 'multipart/form-data': { schema: { type: 'object', properties: { file: { type: 'string', format: 'binary' } } } } } },
      responses: { '200': { description: 'Written', content: { 'application/json': { schema: { type: 'array', items: { type: 'object' } } } } }, '401': { description: 'No or a wrong access token' }, '400': { description: 'Bad path' } },
    },
  };
  return paths;
}

/** Component schemas the hand-written paths refer to. */
export const EXTRA_SCHEMAS: Record<string, unknown> = {
  LambdaServiceError: {
    type: 'object',
    description: 'AWS Lambda\'s error body',
    properties: { Type: { type: 'string', example: 'User' }, message: { type: 'string', example: 'Function not found: arn:aws:lambda:us-east-1:000000000000:function:hello' } },
  },
  JsonRpcMessage: {
    type: 'object',
    description: 'A JSON-RPC 2.0 message (or a batch, as an array)',
    required: ['jsonrpc'],
    properties: { jsonrpc: { type: 'string', const: '2.0' }, id: { type: ['string', 'integer'] }, method: { type: 'string' }, params: { type: 'object' }, result: {}, error: { type: 'object' } },
  },
};
