import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

/**
 * The Python SDK (sdk/python) against a real Kiln: the package is pip-installed offline into a
 * fresh venv of the system python3 (its in-tree PEP 517 backend needs nothing from an index),
 * then its own unittest suite runs with the URL and keys in the environment. The scenario list
 * is the issue's: create, run, stream, files with a 100 MB upload hashed both ways, PTY,
 * functions deploy and invoke, typed errors, 429 retry, and the asyncio client doing the same.
 */
const SDK = fileURLToPath(new URL('../../../sdk/python', import.meta.url));
const PYTHON = '/usr/bin/python3';
const ADMIN = 'sdk-python-admin-key-0123456789abcdef';

let k: TestKiln;
let venv: string;
const keys: Record<string, string> = {};

interface Ran {
  code: number | null;
  out: string;
}

/** Runs a program without blocking the event loop (this Kiln runs in this very process). */
function run(cmd: string, args: string[], opts: { cwd?: string; env?: Record<string, string>; timeoutMs: number }): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

const as = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` });

beforeAll(async () => {
  k = await startTestKiln({
    templates: { nodejs: { pool: { minIdle: 1, maxSandboxes: 8 } }, python: null, shell: null, provided: null },
    // Uploads are bounded by the request body limit: room for the 100 MB upload scenario.
    env: { KILN_ADMIN_API_KEYS: ADMIN, KILN_MAX_BODY_BYTES: String(160 * 1024 * 1024) },
  });
  // Tenants of this file's own: one with default quotas, one throttled to 2 requests a second.
  for (const [id, quotas] of Object.entries({ sdkpy: {}, sdkpyrate: { requestsPerSecond: 2 } })) {
    expect((await k.call('POST', '/api/v1/admin/tenants', { id, quotas }, as(ADMIN))).status).toBe(201);
    const key = await k.call('POST', `/api/v1/admin/tenants/${id}/keys`, {}, as(ADMIN));
    expect(key.status).toBe(201);
    keys[id] = key.body.key as string;
  }
  venv = mkdtempSync(join(tmpdir(), 'kiln-sdk-python-'));
  const made = await run(PYTHON, ['-m', 'venv', '--system-site-packages', venv], { timeoutMs: 120_000 });
  expect(made.code, made.out).toBe(0);
}, 180_000);

afterAll(async () => {
  if (venv) rmSync(venv, { recursive: true, force: true });
  await k?.stop();
});

describe('Python SDK', () => {
  it('runs on the system python3 (3.9 or later)', async () => {
    const v = await run(PYTHON, ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'], { timeoutMs: 30_000 });
    const [major, minor] = v.out.trim().split('.').map(Number);
    expect(major === 3 && (minor as number) >= 9, v.out).toBe(true);
  });

  it('installs offline with pip and passes its unittest suite against this Kiln', async () => {
    // --no-index: nothing may come from a package index; build isolation stays on (the default).
    const pip = await run(join(venv, 'bin/python'), ['-m', 'pip', 'install', '--no-index', '--no-cache-dir', '--disable-pip-version-check', SDK], { timeoutMs: 180_000 });
    expect(pip.code, pip.out).toBe(0);
    expect(pip.out).toMatch(/Successfully installed kiln-sdk-0\.1\.0/);
    const typed = await run(join(venv, 'bin/python'), ['-c', 'import importlib.resources as r, kiln; print(r.files("kiln").joinpath("py.typed").is_file(), kiln.__file__)'], { cwd: venv, timeoutMs: 30_000 });
    expect(typed.out, 'py.typed ships and kiln comes from the venv, not the source tree').toMatch(new RegExp(`^True ${venv}/`));

    // Every test method the suite defines must run and pass (none skipped, none missing).
    const defined = readdirSync(join(SDK, 'tests'))
      .filter((f) => /^test_.*\.py$/.test(f))
      .reduce((n, f) => n + (readFileSync(join(SDK, 'tests', f), 'utf8').match(/^\s+(async )?def test_/gm)?.length ?? 0), 0);
    const env = { KILN_URL: k.url, KILN_API_KEY: keys.sdkpy as string, KILN_RATE_API_KEY: keys.sdkpyrate as string, PYTHONDONTWRITEBYTECODE: '1' };
    // Run from the venv (not sdk/python), so `import kiln` finds the installed package.
    const res = await run(join(venv, 'bin/python'), ['-m', 'unittest', 'discover', '-v', '-s', join(SDK, 'tests'), '-t', join(SDK, 'tests')], { cwd: venv, env, timeoutMs: 840_000 });
    const ran = /^Ran (\d+) tests? in/m.exec(res.out);
    const failed = res.out.split('\n').filter((l) => / \.\.\. (FAIL|ERROR|skipped)/.test(l) || /^(FAIL|ERROR):/.test(l));
    expect({ exit: res.code, failed }, res.out).toEqual({ exit: 0, failed: [] });
    expect(Number(ran?.[1]), res.out).toBe(defined);
    expect(res.out, res.out).toMatch(/\nOK\s*$/);
    // Every session the suite made was killed.
    const left = await k.call('GET', '/api/v1/sessions', undefined, as(keys.sdkpy as string));
    expect(left.body.sessions, JSON.stringify(left.body)).toEqual([]);
  }, 900_000);
});
