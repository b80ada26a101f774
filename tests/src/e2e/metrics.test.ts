import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

let k: TestKiln;
beforeAll(async () => {
  k = await startTestKiln();
});
afterAll(async () => {
  await k?.stop();
});

const sample = (text: string, series: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

describe('GET /metrics', () => {
  it('serves queue depth, pool sizes, start types, latency and errors in Prometheus text format', async () => {
    const code = 'exports.handler = async () => 1';
    await k.call('POST', '/api/v1/executions', { code, language: 'nodejs' });
    await k.call('POST', '/api/v1/executions', { code, language: 'nodejs' });
    await k.call('POST', '/api/v1/executions', { code: 'exports.handler = async () => { throw new RangeError("no") }', language: 'nodejs' });
    // A replica keeps a finished lease for KILN_LEASE_HOLD_MS (its next call of the same function
    // takes it without Redis), and a held lease counts as busy: wait until it is handed back.
    let res: Response;
    let text: string;
    for (let tries = 0; ; tries++) {
      res = await fetch(`${k.url}/metrics`);
      text = await res.text();
      if (sample(text, 'kiln_pool_sandboxes{template="nodejs",state="busy"}') === 0 || tries >= 50) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(text).toMatch(/^# HELP kiln_queue_jobs /m);
    expect(text).toMatch(/^# TYPE kiln_invocation_duration_seconds histogram$/m);
    expect(sample(text, 'kiln_queue_jobs{template="nodejs",state="waiting"}')).toBe(0);
    expect(sample(text, 'kiln_queue_jobs{template="nodejs",state="active"}')).toBe(0);
    expect(sample(text, 'kiln_pool_sandboxes{template="nodejs",state="idle_hot"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'kiln_pool_sandboxes{template="nodejs",state="idle_warm"}')).toBeGreaterThanOrEqual(0);
    expect(sample(text, 'kiln_pool_sandboxes{template="nodejs",state="busy"}')).toBe(0);
    expect(sample(text, 'kiln_executors{template="nodejs"}')).toBe(1);
    expect(sample(text, 'kiln_invocation_starts_total{template="nodejs",start_type="hot",tenant="default"}')).toBe(1);
    expect(sample(text, 'kiln_invocation_starts_total{template="nodejs",start_type="warm",tenant="default"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'kiln_invocation_duration_seconds_count{template="nodejs",start_type="hot",tenant="default"}')).toBe(1);
    expect(sample(text, 'kiln_invocation_duration_seconds_bucket{template="nodejs",start_type="hot",tenant="default",le="+Inf"}')).toBe(1);
    expect(sample(text, 'kiln_errors_total{type="RangeError",tenant="default"}')).toBe(1);
  });
});

const ALPHA = 'alpha-key-0123456789abcdef';
const BETA = 'beta-key-0123456789abcdef0';
const ADMIN = 'admin-key-0123456789abcdef';
const OK = 'exports.handler = async () => 1';
const FAIL = 'exports.handler = async () => { throw new RangeError("no") }';

/** A control plane with tenants alpha and beta (and an admin to scrape), `env` added. */
function tenantKiln(env: Record<string, string>): { kiln: () => TestKiln; run: (key: string, code: string) => Promise<void>; scrape: () => Promise<string> } {
  let t: TestKiln;
  beforeAll(async () => {
    t = await startTestKiln({ env: { KILN_API_KEYS: `alpha:${ALPHA},beta:${BETA}`, KILN_ADMIN_API_KEYS: ADMIN, ...env } });
  });
  afterAll(async () => {
    await t?.stop();
  });
  return {
    kiln: () => t,
    async run(key, code) {
      const res = await t.call('POST', '/api/v1/executions', { code, language: 'nodejs' }, { authorization: `Bearer ${key}` });
      expect(res.status).toBe(200);
    },
    async scrape() {
      const res = await fetch(`${t.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } });
      expect(res.status).toBe(200);
      return res.text();
    },
  };
}

/** The sum of every sample of `name` whose labels include each of `labels`. */
const total = (text: string, name: string, ...labels: string[]): number =>
  text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) && labels.every((x) => l.slice(0, l.lastIndexOf('}')).includes(x)))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);

describe('GET /metrics by tenant', () => {
  const t = tenantKiln({});
  it('labels invocations, latency, errors and live sessions with the tenant, each tenant its own series', async () => {
    await t.run(ALPHA, OK);
    await t.run(ALPHA, OK);
    await t.run(BETA, FAIL);
    const session = await t.kiln().call('POST', '/api/v1/sessions', { template: 'nodejs' }, { authorization: `Bearer ${BETA}` });
    expect(session.status).toBe(201);
    const text = await t.scrape();
    expect(total(text, 'kiln_invocation_starts_total', 'template="nodejs"', 'tenant="alpha"')).toBe(2);
    expect(total(text, 'kiln_invocation_starts_total', 'template="nodejs"', 'tenant="beta"')).toBe(1);
    expect(total(text, 'kiln_invocation_duration_seconds_count', 'tenant="alpha"')).toBe(2);
    expect(total(text, 'kiln_invocation_duration_seconds_count', 'tenant="beta"')).toBe(1);
    expect(sample(text, 'kiln_errors_total{type="RangeError",tenant="beta"}')).toBe(1);
    expect(total(text, 'kiln_errors_total', 'tenant="alpha"')).toBe(0);
    expect(sample(text, 'kiln_sessions{template="nodejs",tenant="beta"}')).toBe(1);
    expect(total(text, 'kiln_sessions', 'tenant="alpha"')).toBe(0);
    await t.kiln().call('DELETE', `/api/v1/sessions/${session.body.id as string}`, undefined, { authorization: `Bearer ${BETA}` });
    expect(sample(await t.scrape(), 'kiln_sessions{template="nodejs",tenant="beta"}')).toBeUndefined();
  });
});

describe('GET /metrics with KILN_METRICS_MAX_TENANTS=1', () => {
  const t = tenantKiln({ KILN_METRICS_MAX_TENANTS: '1' });
  it('gives the first tenant seen its own label and folds the next into tenant="_other"', async () => {
    await t.run(ALPHA, OK);
    await t.run(BETA, OK);
    await t.run(BETA, OK);
    const text = await t.scrape();
    expect(total(text, 'kiln_invocation_starts_total', 'tenant="alpha"')).toBe(1);
    expect(total(text, 'kiln_invocation_starts_total', 'tenant="_other"')).toBe(2);
    expect(total(text, 'kiln_invocation_starts_total', 'tenant="beta"')).toBe(0);
    expect(total(text, 'kiln_invocation_duration_seconds_count', 'tenant="_other"')).toBe(2);
  });
});

describe('GET /metrics with KILN_METRICS_TENANT_LABEL=false', () => {
  const t = tenantKiln({ KILN_METRICS_TENANT_LABEL: 'false' });
  it('has no tenant label on any series', async () => {
    await t.run(ALPHA, OK);
    await t.run(BETA, FAIL);
    const text = await t.scrape();
    expect(text).not.toContain('tenant=');
    expect(total(text, 'kiln_invocation_starts_total', 'template="nodejs"')).toBe(2);
    expect(sample(text, 'kiln_errors_total{type="RangeError"}')).toBe(1);
  });
});
