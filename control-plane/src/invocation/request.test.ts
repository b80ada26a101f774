import { InvokeStatus, type InvokeResponse } from '@kiln/proto/executor/invoke';
import { describe, expect, it } from 'vitest';
import { handlerFile, languageOfRunner, LANGUAGES, RUNTIMES, runnerOf } from './languages.js';
import { checkEventDepth, EventTooDeepError, eventText, inlineFunction, outcomeOf } from './request.js';
import { idempotencyKey, idempotentId } from './submit.js';

const response = (over: Partial<InvokeResponse>): InvokeResponse => ({
  status: InvokeStatus.INVOKE_STATUS_SUCCEEDED,
  payload: Buffer.alloc(0),
  raw: false,
  logs: '',
  logsTruncated: false,
  durationMs: 1,
  initMs: 0,
  maxMemoryMb: 1,
  sandboxAlive: true,
  error: undefined,
  ...over,
} as InvokeResponse);

/** A value nested `depth` levels deep, built without recursion. */
function deep(depth: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

describe('the languages table', () => {
  it('maps each language to one runtime, runner, template and handler file', () => {
    expect(LANGUAGES).toEqual({ nodejs: 'nodejs20.x', python: 'python3.11' });
    expect(runnerOf('provided.al2023')).toBe('provided');
    expect(RUNTIMES['python3.11'].template).toBe('python');
    expect(languageOfRunner('python')).toBe('python');
    expect(languageOfRunner('provided')).toBeUndefined();
    expect(handlerFile('nodejs20.x', 'index.handler', 'exports.handler = 1')).toEqual({ path: 'index.js', mode: 0o644 });
    expect(handlerFile('nodejs20.x', 'app.main', 'export const main = 1')).toEqual({ path: 'app.mjs', mode: 0o644 });
    expect(handlerFile('python3.11', 'pkg.mod.handler', '')).toEqual({ path: 'pkg/mod.py', mode: 0o644 });
    expect(handlerFile('provided', 'function.handler', '')).toEqual({ path: 'bootstrap', mode: 0o755 });
  });
});

describe('building a request', () => {
  it('gives the same inline code the same identity, and other code or scope another', () => {
    const a = inlineFunction({ scope: 'x', language: 'nodejs', code: 'exports.handler = 1', env: {}, memoryMB: 128 });
    expect(inlineFunction({ scope: 'x', language: 'nodejs', code: 'exports.handler = 1', env: {}, memoryMB: 128 }).key).toBe(a.key);
    expect(inlineFunction({ scope: 'x', language: 'nodejs', code: 'exports.handler = 2', env: {}, memoryMB: 128 }).key).not.toBe(a.key);
    expect(inlineFunction({ scope: 's', language: 'nodejs', code: 'exports.handler = 1', env: {}, memoryMB: 128 }).key).not.toBe(a.key);
    expect(a).toMatchObject({ runner: 'nodejs', handler: 'index.handler', files: [{ path: 'index.js' }] });
  });

  it('refuses events nested past the limit, as a value or as text, without overflowing the stack', () => {
    expect(eventText(deep(100))).toMatch(/^\[\[/);
    expect(() => eventText(deep(100_000))).toThrow(EventTooDeepError);
    expect(() => checkEventDepth('['.repeat(5000) + ']'.repeat(5000))).toThrow(EventTooDeepError);
    expect(new EventTooDeepError().status).toBe(400);
  });
});

describe('mapping a response', () => {
  it('returns JSON as its text (resultJson) and a custom runtime\'s bytes as resultBase64', () => {
    expect(outcomeOf(response({ payload: Buffer.from('{"a":1}') }))).toEqual({ status: 'succeeded', resultJson: '{"a":1}' });
    expect(outcomeOf(response({ payload: Buffer.alloc(0) }))).toEqual({ status: 'succeeded', resultJson: 'null' });
    expect(outcomeOf(response({ payload: Buffer.from([0xff, 0x00]), raw: true }))).toEqual({ status: 'succeeded', resultBase64: '/wA=' });
    const error = { errorType: 'TypeError', errorMessage: 'no', stackTrace: [] };
    expect(outcomeOf(response({ status: InvokeStatus.INVOKE_STATUS_FAILED, error }))).toEqual({ status: 'failed', error });
    expect(outcomeOf(response({ status: InvokeStatus.INVOKE_STATUS_TIMEOUT, error }))).toEqual({ status: 'timeout', error });
  });
});

describe('idempotency keys', () => {
  it('name one UUID-shaped job per key and scope', () => {
    const id = idempotentId('executions', 'k1');
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(idempotentId('executions', 'k1')).toBe(id);
    expect(idempotentId('executions', 'k2')).not.toBe(id);
    expect(idempotentId('function:f:$LATEST', 'k1')).not.toBe(id);
  });

  it('accepts 1-256 printable characters and refuses the rest', () => {
    expect(idempotencyKey(undefined, 'Idempotency-Key')).toBeUndefined();
    expect(idempotencyKey('order-42', 'Idempotency-Key')).toBe('order-42');
    expect(() => idempotencyKey('', 'Idempotency-Key')).toThrow(/1-256 printable/);
    expect(() => idempotencyKey('a b', 'Idempotency-Key')).toThrow(/1-256 printable/);
    expect(() => idempotencyKey('x'.repeat(257), 'Idempotency-Key')).toThrow(/1-256 printable/);
  });
});
