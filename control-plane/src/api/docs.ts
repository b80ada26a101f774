import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Hono } from 'hono';

const ASSETS = new Set(['swagger-ui.css', 'swagger-ui-bundle.js', 'swagger-ui-standalone-preset.js', 'favicon-32x32.png']);
const TYPES: Record<string, string> = { css: 'text/css', js: 'application/javascript', png: 'image/png' };

/**
 * A browsable API reference at /docs, served from the swagger-ui-dist package so it works
 * offline (no CDN). Its Authorize button comes from the document's securitySchemes (a key as
 * bearer or x-api-key), kept across reloads in the page's localStorage (persistAuthorization).
 */
export function docsRoutes(specPath: string): Hono {
  const app = new Hono();
  // Only the static files are needed; importing the package would load its 1 MB bundle into the server.
  const dir = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
  app.get('/docs', (c) =>
    c.html(`<!doctype html><html><head><meta charset="utf-8"><title>Kiln API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head><body><div id="ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({ url: '${specPath}', dom_id: '#ui', persistAuthorization: true });</script></body></html>`),
  );
  app.get('/docs/assets/:file', async (c) => {
    const file = c.req.param('file');
    if (!ASSETS.has(file)) return c.notFound();
    const body = await readFile(join(dir, file));
    return c.body(body, 200, { 'content-type': TYPES[file.split('.').pop() ?? ''] ?? 'application/octet-stream', 'cache-control': 'max-age=3600' });
  });
  return app;
}
