import { createHmac, timingSafeEqual } from 'node:crypto';
import { Hono } from 'hono';
import { KilnError } from '../errors.js';
import type { AppEnv } from '../api/router.js';
import type { CodePackages } from './package.js';
import type { FunctionVersionRecord } from './types.js';
import { writeZip } from './zip.js';

/** How long a link works: Lambda's presigned Code.Location lasts 10 minutes. */
const LINK_TTL_MS = 10 * 60_000;
export const CODE_LINK_PREFIX = '/api/v1/function-code/';

class CodeLinkRefusedError extends KilnError {
  constructor(why: string) {
    super('CodeLinkRefused', 403, `this code link cannot be used: ${why}; ask GetFunction for a new one`);
  }
}

/**
 * GetFunction's `Code.Location`: a link that downloads a function version's code package as a
 * zip for 10 minutes, without a key, as Lambda's presigned S3 URL does. The link names the
 * package's blob key (so it keeps giving the code of that version, whatever happens to $LATEST)
 * and its expiry, signed with a key derived from the deployment's secret (every replica derives
 * the same); nothing else reaches a package this way. Whoever holds a link reads that code: it
 * goes to callers with the `read` scope on the function.
 */
export class CodeLinks {
  constructor(
    private readonly key: Buffer,
    private readonly packages: Pick<CodePackages, 'load'>,
  ) {}

  private sign(payload: string): string {
    return createHmac('sha256', this.key).update(payload).digest('hex');
  }

  url(origin: string, record: FunctionVersionRecord, now = Date.now()): string {
    const payload = Buffer.from(JSON.stringify({ b: record.codeBlob, n: record.name, v: record.version, e: now + LINK_TTL_MS })).toString('base64url');
    return `${origin}${CODE_LINK_PREFIX}${payload}.${this.sign(payload)}`;
  }

  /** The package a link names, as a zip; CodeLinkRefused for a link that is not ours or has expired. */
  async zip(token: string, now = Date.now()): Promise<{ name: string; zip: Buffer }> {
    const [payload = '', signature = ''] = token.split('.');
    const given = Buffer.from(signature, 'hex');
    const expected = Buffer.from(this.sign(payload), 'hex');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new CodeLinkRefusedError('its signature does not match');
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { b: string; n: string; v: string; e: number };
    if (!(claims.e > now)) throw new CodeLinkRefusedError('it has expired');
    const files = await this.packages.load(claims.b);
    if (!files) throw new KilnError('CodeMissing', 404, `the code package of function "${claims.n}" version ${claims.v} is gone (the function or version was deleted)`);
    return { name: claims.n, zip: writeZip(files.map((f) => ({ path: f.path, content: Buffer.from(f.content, 'base64'), mode: f.mode }))) };
  }

  routes(): Hono<AppEnv> {
    const app = new Hono<AppEnv>();
    app.get(`${CODE_LINK_PREFIX}:token`, async (c) => {
      const { name, zip } = await this.zip(c.req.param('token'));
      return c.body(new Uint8Array(zip), 200, { 'content-type': 'application/zip', 'content-disposition': `attachment; filename="${name}.zip"`, 'cache-control': 'private, no-store' });
    });
    return app;
  }
}
