/**
 * The `operationId` of every REST operation, by `METHOD path`. SDK generators name their methods
 * after these, so they are part of the API: renaming one is a breaking change. An operation
 * missing here gets one derived from its method and path (document.ts), and the lint test
 * (tests/src/e2e/openapi-lint.test.ts) lists such operations so they get a real name.
 */
export const OPERATION_IDS: Record<string, string> = {
  'POST /api/v1/executions': 'createExecution',
  'GET /api/v1/executions': 'listExecutions',
  'GET /api/v1/executions/{id}': 'getExecution',
  'POST /api/v1/functions': 'createFunction',
  'GET /api/v1/functions': 'listFunctions',
  'GET /api/v1/functions/{name}': 'getFunction',
  'PUT /api/v1/functions/{name}': 'updateFunction',
  'DELETE /api/v1/functions/{name}': 'deleteFunction',
  'POST /api/v1/functions/{name}/versions': 'publishFunctionVersion',
  'GET /api/v1/functions/{name}/versions': 'listFunctionVersions',
  'POST /api/v1/functions/{name}/invocations': 'invokeFunction',
  'GET /api/v1/functions/{name}/dead-letters': 'listDeadLetters',
  'POST /api/v1/functions/{name}/dead-letters/{id}/replay': 'replayDeadLetter',
  'POST /api/v1/functions/{name}/aliases': 'createFunctionAlias',
  'GET /api/v1/functions/{name}/aliases': 'listFunctionAliases',
  'GET /api/v1/functions/{name}/aliases/{alias}': 'getFunctionAlias',
  'PUT /api/v1/functions/{name}/aliases/{alias}': 'updateFunctionAlias',
  'DELETE /api/v1/functions/{name}/aliases/{alias}': 'deleteFunctionAlias',
  'GET /api/v1/templates': 'listTemplates',
  'POST /api/v1/templates': 'createTemplate',
  'GET /api/v1/templates/{name}': 'getTemplate',
  'PUT /api/v1/templates/{name}': 'updateTemplate',
  'DELETE /api/v1/templates/{name}': 'deleteTemplate',
  'GET /api/v1/admin/tenants': 'listTenants',
  'POST /api/v1/admin/tenants': 'createTenant',
  'GET /api/v1/admin/tenants/{id}': 'getTenant',
  'PATCH /api/v1/admin/tenants/{id}': 'updateTenant',
  'DELETE /api/v1/admin/tenants/{id}': 'deleteTenant',
  'GET /api/v1/admin/tenants/{id}/keys': 'listTenantKeys',
  'POST /api/v1/admin/tenants/{id}/keys': 'createTenantKey',
  'DELETE /api/v1/admin/tenants/{id}/keys/{keyId}': 'deleteTenantKey',
  'PUT /api/v1/admin/tenants/{id}/secrets/{name}': 'putTenantSecret',
  'DELETE /api/v1/admin/tenants/{id}/secrets/{name}': 'deleteTenantSecret',
  'GET /api/v1/admin/tenants/{id}/secrets': 'listTenantSecrets',
  'POST /api/v1/sessions': 'createSession',
  'GET /api/v1/sessions': 'listSessions',
  'GET /api/v1/sessions/{id}': 'getSession',
  'DELETE /api/v1/sessions/{id}': 'deleteSession',
  'POST /api/v1/sessions/{id}/keepalive': 'keepSessionAlive',
  'POST /api/v1/sessions/{id}/process/run': 'runProcess',
  'POST /api/v1/sessions/{id}/process/stream': 'streamProcess',
  'POST /api/v1/sessions/{id}/processes': 'startProcess',
  'GET /api/v1/sessions/{id}/processes': 'listProcesses',
  'POST /api/v1/sessions/{id}/processes/{pid}/signal': 'signalProcess',
  'POST /api/v1/sessions/{id}/processes/{process}/stdin': 'writeProcessStdin',
  'GET /api/v1/sessions/{id}/processes/{process}/stream': 'attachProcess',
  'POST /api/v1/sessions/{id}/execute': 'executeInSession',
  'GET /api/v1/sessions/{id}/files': 'readFile',
  'PUT /api/v1/sessions/{id}/files': 'writeFile',
  'DELETE /api/v1/sessions/{id}/files': 'removeFile',
  'GET /api/v1/sessions/{id}/files/list': 'listFiles',
  'GET /api/v1/sessions/{id}/files/stat': 'statFile',
  'POST /api/v1/sessions/{id}/files/mkdir': 'makeDirectory',
  'POST /api/v1/sessions/{id}/files/rename': 'renameFile',
  'GET /api/v1/sessions/{id}/files/tar': 'downloadTar',
  'PUT /api/v1/sessions/{id}/files/tar': 'uploadTar',
  'POST /api/v1/sessions/{id}/secrets': 'bindSessionSecrets',
  'GET /api/v1/sessions/{id}/network': 'getSessionNetwork',
  'PUT /api/v1/sessions/{id}/network': 'updateSessionNetwork',
  'GET /api/v1/sessions/{id}/network/audit': 'getSessionNetworkAudit',
  'POST /api/v1/sessions/{id}/contexts': 'createCodeContext',
  'GET /api/v1/sessions/{id}/contexts': 'listCodeContexts',
  'GET /api/v1/sessions/{id}/contexts/{ctx}': 'getCodeContext',
  'DELETE /api/v1/sessions/{id}/contexts/{ctx}': 'deleteCodeContext',
  'POST /api/v1/sessions/{id}/contexts/{ctx}/restart': 'restartCodeContext',
  'POST /api/v1/sessions/{id}/contexts/{ctx}/interrupt': 'interruptCodeContext',
  'POST /api/v1/sessions/{id}/code': 'runCode',
  'GET /api/v1/health': 'getHealth',
  'POST /e2b/sandboxes': 'e2bCreateSandbox',
  'GET /e2b/sandboxes': 'e2bListSandboxes',
  'POST /e2b/v2/sandboxes': 'e2bCreateSandboxV2',
  'GET /e2b/v2/sandboxes': 'e2bListSandboxesV2',
  'GET /e2b/sandboxes/{sandboxID}': 'e2bGetSandbox',
  'DELETE /e2b/sandboxes/{sandboxID}': 'e2bKillSandbox',
  'POST /e2b/sandboxes/{sandboxID}/timeout': 'e2bSetSandboxTimeout',
  'POST /e2b/sandboxes/{sandboxID}/refreshes': 'e2bRefreshSandbox',
  'POST /e2b/v2/sandboxes/{sandboxID}/connect': 'e2bConnectSandbox',
  'POST /e2b/sandboxes/{sandboxID}/pause': 'e2bPauseSandbox',
};

/** A name for an operation the table lacks: `post /api/v1/a/{b}/c` → `postABByC`-like camel case. */
export function derivedOperationId(method: string, path: string): string {
  const words = path
    .replace(/^\/api\/v1\//, '/')
    .split('/')
    .filter(Boolean)
    .map((part) => (part.startsWith('{') ? `by-${part.slice(1, -1)}` : part))
    .join('-')
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean);
  return method.toLowerCase() + words.map((w) => w[0]!.toUpperCase() + w.slice(1)).join('');
}
