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
    const res = await fetch(`${k.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toMatch(/^# HELP kiln_queue_jobs /m);
    expect(text).toMatch(/^# TYPE kiln_invocation_duration_seconds histogram$/m);
    expect(sample(text, 'kiln_queue_jobs{template="nodejs",state="waiting"}')).toBe(0);
    expect(sample(text, 'kiln_queue_jobs{template="nodejs",state="active"}')).toBe(0);
    expect(sample(text, 'kiln_pool_sandboxes{template="nodejs",state="idle_hot"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'kiln_pool_sandboxes{template="nodejs",state="idle_warm"}')).toBeGreaterThanOrEqual(0);
    expect(sample(text, 'kiln_pool_sandboxes{template="nodejs",state="busy"}')).toBe(0);
    expect(sample(text, 'kiln_executors{template="nodejs"}')).toBe(1);
    expect(sample(text, 'kiln_invocation_starts_total{template="nodejs",start_type="hot"}')).toBe(1);
    expect(sample(text, 'kiln_invocation_starts_total{template="nodejs",start_type="warm"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'kiln_invocation_duration_seconds_count{template="nodejs",start_type="hot"}')).toBe(1);
    expect(sample(text, 'kiln_invocation_duration_seconds_bucket{template="nodejs",start_type="hot",le="+Inf"}')).toBe(1);
    expect(sample(text, 'kiln_errors_total{type="RangeError"}')).toBe(1);
  });
});
