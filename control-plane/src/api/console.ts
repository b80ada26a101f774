import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Hono, type Context } from 'hono';

const TYPES: Record<string, string> = {
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
  png: 'image/png',
  ico: 'image/x-icon',
  woff2: 'font/woff2',
  json: 'application/json',
};
const ASSET_NAME = /^[A-Za-z0-9_.-]{1,200}$/;
/** Where the page gets its style nonce (the console's main.tsx hands it to xterm's <style> elements). */
const NONCE_META = '<meta name="kiln-style-nonce" content="%NONCE%">';

/**
 * The Content-Security-Policy of every console response. Scripts only from Kiln itself (no
 * inline script, no eval), connections only to Kiln (the API and the terminal's WebSocket),
 * nothing framed and no framing, no forms, no <base>. Styles from Kiln or carrying this
 * response's nonce: xterm.js renders with <style> elements it creates, and the console gives
 * them the nonce; an injected <style> without it is refused.
 */
export function consoleCsp(nonce: string): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    `style-src 'self' 'nonce-${nonce}'`,
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "manifest-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

interface Asset {
  body: Buffer;
  gzip: Buffer;
  type: string;
}

/** The built files, read into memory; `stamp` is index.html's mtime, so a rebuild is noticed. */
function load(dir: string): { index: string; assets: Map<string, Asset>; stamp: number } | undefined {
  const indexPath = join(dir, 'index.html');
  if (!existsSync(indexPath)) return undefined;
  const stamp = statSync(indexPath).mtimeMs;
  const index = readFileSync(indexPath, 'utf8').replace('<head>', `<head>${NONCE_META}`);
  const assets = new Map<string, Asset>();
  const assetDir = join(dir, 'assets');
  for (const name of existsSync(assetDir) ? readdirSync(assetDir) : []) {
    const type = TYPES[name.split('.').pop() ?? ''];
    if (!type || !ASSET_NAME.test(name)) continue;
    const body = readFileSync(join(assetDir, name));
    assets.set(name, { body, gzip: gzipSync(body, { level: 9 }), type });
  }
  return { index, assets, stamp };
}

function secure(c: Context, nonce: string): void {
  c.header('Content-Security-Policy', consoleCsp(nonce));
  c.header('X-Content-Type-Options', 'nosniff');
  c.header('Referrer-Policy', 'no-referrer');
  c.header('X-Frame-Options', 'DENY');
  c.header('Cross-Origin-Opener-Policy', 'same-origin');
}

/**
 * The web console (console/) at `/`: index.html with a fresh style nonce per response, and its
 * content-hashed files under /assets/ (gzip when the browser takes it, cached for a year). The
 * page is public, as a login form is: everything it shows comes from the API with a key.
 */
export function consoleRoutes(dir: string): Hono {
  const app = new Hono();
  let built: ReturnType<typeof load> | null = null;
  const files = (): ReturnType<typeof load> => (built ??= load(dir)) ?? undefined;
  app.get('/', (c) => {
    // A rebuild while serving (setup.sh after a pull) is picked up at the next page load; the
    // assets of the build before stay served until then, so an open page keeps working.
    const mtime = existsSync(join(dir, 'index.html')) ? statSync(join(dir, 'index.html')).mtimeMs : undefined;
    if (built && built.stamp !== mtime) built = null;
    const f = files();
    const nonce = randomBytes(16).toString('base64');
    secure(c, nonce);
    c.header('Cache-Control', 'no-store');
    if (!f) {
      built = null; // look again next time: it may be being built
      return c.text(`The Kiln console is not built (no ${join(dir, 'index.html')}): run "npm run build -w console" (scripts/setup.sh does).`, 503);
    }
    return c.html(f.index.replace('%NONCE%', nonce));
  });
  app.get('/assets/:name', (c) => {
    const a = files()?.assets.get(c.req.param('name'));
    secure(c, randomBytes(16).toString('base64'));
    if (!a) return c.text('not found', 404);
    c.header('Content-Type', a.type);
    c.header('Cache-Control', 'public, max-age=31536000, immutable');
    c.header('Vary', 'Accept-Encoding');
    if (/\bgzip\b/.test(c.req.header('accept-encoding') ?? '')) {
      c.header('Content-Encoding', 'gzip');
      return c.body(new Uint8Array(a.gzip), 200);
    }
    return c.body(new Uint8Array(a.body), 200);
  });
  return app;
}
