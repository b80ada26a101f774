import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

const run = promisify(execFile);
const REDOCLY = fileURLToPath(new URL('../../../node_modules/.bin/redocly', import.meta.url));
const METHODS = ['get', 'put', 'post', 'delete', 'patch'];

/**
 * The OpenAPI document as a real Kiln serves it: linted by Redocly's CLI with its recommended
 * rules (zero errors, or this test and so `npm test` fails), and complete where client
 * generators need it (operation ids, security, servers, license, error examples).
 */
describe('OpenAPI document', () => {
  let kiln: TestKiln;
  let doc: any;
  let dir: string;

  beforeAll(async () => {
    kiln = await startTestKiln({ templates: { nodejs: null, python: null, shell: null, provided: null } });
    const res = await fetch(`${kiln.url}/api/v1/openapi.json`);
    expect(res.status).toBe(200);
    doc = await res.json();
    dir = mkdtempSync(join(tmpdir(), 'kiln-openapi-'));
  });
  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    await kiln?.stop();
  });

  it('passes `redocly lint` with the recommended rules and no errors', async () => {
    const file = join(dir, 'openapi.json');
    writeFileSync(file, JSON.stringify(doc, null, 2));
    // The linter exits 1 on errors; its JSON report says which.
    const out = await run(REDOCLY, ['lint', '--extends', 'recommended', '--format', 'json', file], {
      env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
      maxBuffer: 64 * 1024 * 1024,
    }).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }));
    const report = JSON.parse(out.stdout) as { totals: { errors: number }; problems: Array<{ severity: string; ruleId: string; message: string; location: Array<{ pointer: string }> }> };
    const errors = report.problems.filter((p) => p.severity === 'error').map((p) => `${p.ruleId}: ${p.message} at ${p.location[0]?.pointer}`);
    expect(errors).toEqual([]);
    expect(report.totals.errors).toBe(0);
  });

  it('names every operation and says how each is secured', () => {
    const ids = new Set<string>();
    const unsecured: string[] = [];
    for (const [path, item] of Object.entries<any>(doc.paths)) {
      for (const method of METHODS) {
        const op = item[method];
        if (!op) continue;
        expect(op.operationId, `${method} ${path}`).toMatch(/^[a-z][A-Za-z0-9]+$/);
        expect(ids.has(op.operationId), `duplicate ${op.operationId}`).toBe(false);
        ids.add(op.operationId);
        expect(Array.isArray(op.security), `${method} ${path} has no security`).toBe(true);
        if (op.security.length === 0) unsecured.push(`${method} ${path}`);
      }
    }
    // Only what the authentication middleware skips is public.
    expect(unsecured.sort()).toEqual(['get /api/v1/health', 'get /e2b/health']);
    expect(Object.keys(doc.components.securitySchemes)).toEqual(expect.arrayContaining(['bearer', 'apiKey']));
    expect(doc.components.securitySchemes.apiKey).toMatchObject({ type: 'apiKey', in: 'header', name: 'x-api-key' });
    expect(doc.servers.length).toBeGreaterThan(0);
    expect(doc.info.license.name).toBeTruthy();
  });

  it('covers the Lambda API, MCP, the PTY WebSocket and E2B, each in its own tag', () => {
    const tagOf = (path: string, method: string): string[] => doc.paths[path]?.[method]?.tags ?? [];
    expect(tagOf('/2015-03-31/functions/{name}/invocations', 'post')).toEqual(['lambda']);
    expect(doc.paths['/2015-03-31/functions/{name}/invocations'].post.externalDocs.url).toContain('API_Invoke');
    expect(tagOf('/mcp/{profile}', 'post')).toEqual(['mcp']);
    expect(tagOf('/api/v1/sessions/{id}/pty', 'get')).toEqual(['pty']);
    expect(doc.paths['/api/v1/sessions/{id}/pty'].get.responses['101']).toBeDefined();
    expect(tagOf('/e2b/sandboxes', 'post')).toEqual(['e2b']);
    const e2b = doc.tags.find((t: { name: string }) => t.name === 'e2b');
    expect(e2b.externalDocs.url).toContain('e2b-dev/E2B');
  });

  it('documents the invocation body, the metadata filter and distinct error examples', () => {
    const invoke = doc.paths['/api/v1/functions/{name}/invocations'].post;
    expect(invoke.requestBody.content['application/json']).toBeDefined();
    const list = doc.paths['/api/v1/sessions'].get;
    expect(list.parameters.find((p: { name: string }) => p.name === 'metadata')).toMatchObject({ in: 'query', style: 'deepObject' });
    const get = doc.paths['/api/v1/sessions/{id}'].get.responses;
    const example = (status: string): string[] => Object.keys(get[status].content['application/json'].examples);
    expect(example('404')).toContain('SessionNotFound');
    expect(example('429')).toEqual(['QuotaExceeded', 'TooManyRequests']);
    expect(example('400')).not.toEqual(example('404'));
  });

  it('serves the docs page offline with an Authorize button kept across reloads', async () => {
    const res = await fetch(`${kiln.url}/docs`);
    const html = await res.text();
    expect(html).toContain('persistAuthorization: true');
    // Every script and stylesheet comes from this server: no CDN.
    expect(html).not.toMatch(/(src|href)="https?:/);
    expect((await fetch(`${kiln.url}/docs/assets/swagger-ui-bundle.js`)).status).toBe(200);
  });

  it('accepts the metadata filter as a generated client sends it (deepObject)', async () => {
    const made = await kiln.call('GET', '/api/v1/sessions?metadata%5Bowner%5D=nobody-has-this');
    expect(made.status).toBe(200);
    expect(made.body.sessions).toEqual([]);
  });
});
