#!/usr/bin/env node
/**
 * Writes Kiln's OpenAPI document to a file without starting a server or Redis:
 * `node control-plane/dist/api/openapi/export.js OUT.json`. The SDKs generate their types from
 * it (sdk/typescript: `npm run gen`). The routes are registered with services that are never
 * called: building the document only reads the route definitions.
 */
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { createApp, type AppDeps } from '../app.js';
import { documentOf, type OpenApiDocument } from './document.js';

/** The document of an app with every optional surface mounted. */
export function exportDocument(): OpenApiDocument {
  // Stand-ins: the route factories only keep references to these; no request is ever served.
  const unused = new Proxy({}, { get: (_t, prop) => (prop === 'then' ? undefined : () => undefined) });
  const deps = {
    redis: unused,
    executions: unused,
    executors: unused,
    agents: unused,
    templates: unused,
    maxBodyBytes: 6 * 1024 * 1024,
    templateAdmin: unused,
    metrics: unused,
    functions: { service: unused, invoker: unused, aliases: unused, extras: unused, eventConfigs: unused },
    sessions: unused,
    functionUrls: unused,
    keyring: unused,
    egressSecrets: unused,
    sessionLifecycle: { lifecycle: unused, snapshots: unused },
    volumes: unused,
    egressGrants: unused,
    fileLinks: unused,
    ptyTickets: unused,
    observability: { pools: unused, sessionUsage: unused, functionStats: unused },
  } as unknown as AppDeps;
  return documentOf(createApp(deps))();
}

const out = process.argv[2];
if (out && process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) writeFileSync(out, `${JSON.stringify(exportDocument(), null, 2)}\n`);
