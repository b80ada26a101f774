/**
 * A sandbox that fails to boot (seen under load: "bwrap: loopback: Failed RTM_NEWADDR") is the
 * host's fault: the scheduler boots another one once before the caller hears of it, for sessions
 * and invocations alike (scheduler.acquire), and a host where boots keep failing answers a clear
 * 503 SandboxBootFailed at once instead of waiting out the deadline.
 *
 * The failure is real bwrap failing: the executors find `bwrap` through PATH (prlimit execs it),
 * and this file's process (its own fork) puts first on PATH a `bwrap` that fails as many times
 * as `fail-next` says, then runs /usr/bin/bwrap.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { captureLog } from '../support/faults.js';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-flaky-bwrap-'));
const counter = join(dir, 'fail-next');
// Written by the wrapper as the sandbox's own uid (the executor drops to it before bwrap).
const fail = (n: number): void => {
  writeFileSync(counter, `${n}\n`);
  chmodSync(counter, 0o666);
};
const left = (): number => Number(readFileSync(counter, 'utf8').trim());

let k: TestKiln;
const log = captureLog();
const sessions: string[] = [];

beforeAll(async () => {
  fail(0);
  writeFileSync(
    join(dir, 'bwrap'),
    `#!/bin/sh
n=$(cat '${counter}' 2>/dev/null || echo 0)
if [ "$n" -gt 0 ]; then
  echo $((n - 1)) > '${counter}'
  echo 'bwrap: loopback: Failed RTM_NEWADDR: No child processes (made by boot-failure.test.ts)' >&2
  exit 1
fi
exec /usr/bin/bwrap "$@"
`,
  );
  chmodSync(join(dir, 'bwrap'), 0o755);
  chmodSync(dir, 0o755);
  process.env.PATH = `${dir}:${process.env.PATH ?? '/usr/bin:/bin'}`;
  // No warm pool: every sandbox below is booted for the call that wants it.
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 0 } }, python: null, shell: null, provided: null } });
}, 120_000);
afterAll(async () => {
  for (const id of sessions) await k?.call('DELETE', `/api/v1/sessions/${id}`);
  await k?.stop();
  log.stop();
  rmSync(dir, { recursive: true, force: true });
});

const create = () => k.call('POST', '/api/v1/sessions', { template: 'nodejs' });

it('boots another sandbox when one fails to boot, for a session and for an invocation', async () => {
  const before = log.lines('sandbox boot failed');
  fail(1);
  const s = await create();
  expect(s.status, JSON.stringify(s.body)).toBe(201);
  sessions.push(s.body.id as string);
  // The failure happened (bwrap really failed once) and the caller never saw it.
  expect(left()).toBe(0);
  expect(log.lines('sandbox boot failed')).toBe(before + 1);
  const ran = await k.call('POST', `/api/v1/sessions/${s.body.id}/process/run`, { command: 'echo', args: ['booted'] });
  expect(ran.body.stdout).toBe('booted\n');

  expect((await k.call('POST', '/api/v1/functions', { name: 'after-a-failed-boot', runtime: 'nodejs20.x', code: { source: 'exports.handler = async (e) => ({ got: e.n })' } })).status).toBe(201);
  fail(1);
  const res = await fetch(`${k.url}/2015-03-31/functions/after-a-failed-boot/invocations`, { method: 'POST', body: '{"n":7}', headers: { 'content-type': 'application/json' } });
  expect([res.status, await res.text()]).toEqual([200, '{"got":7}']);
  expect(left()).toBe(0);
  expect(log.lines('sandbox boot failed')).toBe(before + 2);
}, 120_000);

it('answers 503 SandboxBootFailed once the second boot fails too, and boots again when the host recovers', async () => {
  fail(2);
  const s = await create();
  expect([s.status, s.body.error?.code], JSON.stringify(s.body)).toEqual([503, 'SandboxBootFailed']);
  expect(s.headers.get('retry-after')).not.toBeNull();
  expect(left()).toBe(0);
  // Nothing of the failed create is held: no session, no quota, no sandbox record booting.
  expect(((await k.call('GET', '/api/v1/sessions')).body as { sessions: unknown[] }).sessions).toHaveLength(sessions.length);
  const again = await create();
  expect(again.status, JSON.stringify(again.body)).toBe(201);
  sessions.push(again.body.id as string);
}, 120_000);
