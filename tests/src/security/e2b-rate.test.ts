import { Sandbox } from 'e2b';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

const KEY = 'e2b_c3c3c3c30123456789abcdef0123456789abcdef';

/**
 * A sandbox's access token reaches its sandbox's routes without an API key; it must not reach
 * past the tenant's request rate (KILN_QUOTA_RPS), which every other surface counts.
 */
describe('E2B sandbox routes under the tenant\'s request rate', () => {
  let k: TestKiln;
  beforeAll(async () => {
    k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 1 } }, python: null, shell: null, provided: null }, env: { KILN_API_KEYS: `gamma:${KEY}`, KILN_QUOTA_RPS: '4' } });
    process.env.E2B_API_URL = `${k.url}/e2b`;
    process.env.E2B_SANDBOX_URL = `${k.url}/e2b/sandbox`;
    process.env.E2B_API_KEY = KEY;
  });
  afterAll(async () => {
    await k?.stop();
  });

  it('refuses a flood through the token with 429s, counted in the tenant\'s bucket, and serves again after', async () => {
    const sbx = await Sandbox.create('nodejs', { timeoutMs: 60_000 });
    try {
      await new Promise((r) => setTimeout(r, 1500));
      const outcomes = await Promise.allSettled(Array.from({ length: 30 }, () => sbx.files.exists('/home/user')));
      const refused = outcomes.filter((o) => o.status === 'rejected');
      expect(outcomes.some((o) => o.status === 'fulfilled')).toBe(true);
      expect(refused.length).toBeGreaterThan(0);
      for (const r of refused) expect(String((r).reason)).toMatch(/QuotaExceeded/);
      // The HTTP files route counts in the same bucket: a 429 with the E2B error shape.
      const res = await Promise.all(
        Array.from({ length: 10 }, () => fetch(`${k.url}/e2b/sandbox/files?path=/home/user/x`, { headers: { 'e2b-sandbox-id': sbx.sandboxId, 'x-access-token': (sbx as unknown as { envdAccessToken: string }).envdAccessToken ?? '' } })),
      );
      expect(res.map((r) => r.status)).toContain(429);
      await new Promise((r) => setTimeout(r, 1500));
      expect(await sbx.files.exists('/home/user')).toBe(true);
    } finally {
      await new Promise((r) => setTimeout(r, 1500));
      await Sandbox.kill(sbx.sandboxId);
    }
  });
});
