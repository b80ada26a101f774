import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

const ALPHA = 'observe-alpha-key-0123456789abcd';
const BETA = 'observe-beta-key-0123456789abcde';
const ADMIN = 'observe-admin-key-0123456789abcd';
const as = (key: string) => ({ authorization: `Bearer ${key}` });

/** Session usage from the cgroup, function figures and the pools' state through the API (issue 25). */
describe('observability API', () => {
  let k: TestKiln;
  let session = '';

  beforeAll(async () => {
    k = await startTestKiln({ env: { KILN_API_KEYS: `alpha:${ALPHA},beta:${BETA}`, KILN_ADMIN_API_KEYS: ADMIN } });
    const s = await k.call('POST', '/api/v1/sessions', { template: 'nodejs' }, as(ALPHA));
    expect(s.status, JSON.stringify(s.body)).toBe(201);
    session = s.body.id;
  });
  afterAll(async () => {
    if (session) await k?.call('DELETE', `/api/v1/sessions/${session}`, undefined, as(ALPHA));
    await k?.stop();
  });

  it('samples a session\'s CPU and memory from its cgroup, and CPU time grows while it works', async () => {
    const first = await k.call('GET', `/api/v1/sessions/${session}/metrics`, undefined, as(ALPHA));
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(first.body.source).toMatch(/^cgroup-v[12]$/);
    expect(first.body.memoryBytes).toBeGreaterThan(0);
    expect(first.body.memoryLimitBytes).toBeGreaterThan(0);
    expect(first.body.tasks).toBeGreaterThan(0);
    expect(typeof first.body.cpuUsageUs).toBe('number');
    // Half a second of busy CPU inside the sandbox shows as CPU time.
    const burn = await k.call('POST', `/api/v1/sessions/${session}/process/run`, { command: 'node', args: ['-e', 'const t=Date.now(); while (Date.now()-t<500);'] }, as(ALPHA));
    expect(burn.status, JSON.stringify(burn.body)).toBeLessThan(300);
    const second = await k.call('GET', `/api/v1/sessions/${session}/metrics`, undefined, as(ALPHA));
    expect(second.body.cpuUsageUs - first.body.cpuUsageUs).toBeGreaterThan(100_000);
    expect(second.body.sampledAtMs).toBeGreaterThan(first.body.sampledAtMs);
  });

  it('answers another tenant\'s key as if the session did not exist', async () => {
    const r = await k.call('GET', `/api/v1/sessions/${session}/metrics`, undefined, as(BETA));
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe('SessionNotFound');
    expect((await k.call('GET', '/api/v1/sessions/no-such-session/metrics', undefined, as(ALPHA))).status).toBe(404);
  });

  it('counts a function\'s invocations and errors, with latency percentiles, per tenant', async () => {
    const code = 'exports.handler = async (e) => { if (e.fail) throw new Error("nope"); return "ok"; }';
    expect((await k.call('POST', '/api/v1/functions', { name: 'obs-fn', runtime: 'nodejs20.x', code: { source: code } }, as(ALPHA))).status).toBe(201);
    for (const fail of [false, false, false, true]) await k.call('POST', '/api/v1/functions/obs-fn/invocations', { fail }, as(ALPHA));
    let m: any;
    for (let i = 0; i < 100; i++) {
      m = (await k.call('GET', '/api/v1/functions/obs-fn/metrics', undefined, as(ALPHA))).body;
      if (m.invocations === 4) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(m.invocations).toBe(4);
    expect(m.errors).toBe(1);
    expect(m.byStatus).toEqual({ succeeded: 3, failed: 1 });
    expect(m.latencyMs.p50).toBeGreaterThan(0);
    expect(m.latencyMs.p99).toBeGreaterThanOrEqual(m.latencyMs.p50);
    expect(m.latencyMs.max).toBeGreaterThanOrEqual(m.latencyMs.p99);
    // Another tenant: unknown. Its own function of the same name would be its own.
    expect((await k.call('GET', '/api/v1/functions/obs-fn/metrics', undefined, as(BETA))).status).toBe(404);
    expect((await k.call('GET', '/api/v1/functions/obs-fn/metrics?windowMs=5', undefined, as(ALPHA))).status).toBe(400);
    // An administrator reaches it by naming the tenant.
    expect((await k.call('GET', '/api/v1/functions/obs-fn/metrics?tenant=alpha', undefined, as(ADMIN))).body.invocations).toBe(4);
    await k.call('DELETE', '/api/v1/functions/obs-fn', undefined, as(ALPHA));
  });

  it('shows each pool\'s state and start-latency histograms; executor detail to administrators only', async () => {
    const r = await k.call('GET', '/api/v1/pools', undefined, as(BETA));
    expect(r.status).toBe(200);
    const node = r.body.pools.find((p: any) => p.template === 'nodejs');
    expect(node.executors).toBeGreaterThan(0);
    expect(node.sandboxes.idleWarm + node.sandboxes.idleHot + node.sandboxes.busy + node.sandboxes.booting).toBeGreaterThan(0);
    const starts = node.starts.warm.count + node.starts.hot.count + node.starts.cold.count;
    expect(starts).toBeGreaterThan(0);
    for (const type of ['hot', 'warm', 'cold']) {
      const h = node.starts[type];
      expect(h.buckets.reduce((a: number, b: any) => a + b.count, 0)).toBe(h.count);
      expect(h.buckets.at(-1).leMs).toBeNull();
    }
    expect(node.executorDetail).toBeUndefined();
    const admin = await k.call('GET', '/api/v1/pools', undefined, as(ADMIN));
    expect(admin.body.pools.find((p: any) => p.template === 'nodejs').executorDetail[0].ok).toBe(true);
    expect((await k.call('GET', '/api/v1/pools')).status).toBe(401);
  });
});
