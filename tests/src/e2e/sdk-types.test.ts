import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SDK = join(ROOT, 'sdk/typescript');

/**
 * The TypeScript SDK's generated files are what `npm run gen -w @kiln-sandbox/sdk` makes from
 * the routes as they are now: the same two steps (export the document, openapi-typescript) into a
 * scratch directory, compared with what is committed. A route changed without regenerating fails.
 */
describe('TypeScript SDK generated types', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-sdk-gen-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('match the OpenAPI document (run `npm run gen -w @kiln-sandbox/sdk` after changing a route)', { timeout: 180_000 }, async () => {
    const doc = join(dir, 'openapi.json');
    const types = join(dir, 'schema.gen.ts');
    await run(process.execPath, [join(ROOT, 'control-plane/dist/api/openapi/export.js'), doc]);
    await run(join(ROOT, 'node_modules/.bin/openapi-typescript'), [doc, '-o', types], { cwd: SDK });
    expect(readFileSync(doc, 'utf8') === readFileSync(join(SDK, 'openapi.json'), 'utf8'), 'sdk/typescript/openapi.json is stale').toBe(true);
    expect(readFileSync(types, 'utf8') === readFileSync(join(SDK, 'src/gen/schema.gen.ts'), 'utf8'), 'sdk/typescript/src/gen/schema.gen.ts is stale').toBe(true);
  });
});
