import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { disposeKilnProcess, startKilnProcess, testDirs, type KilnProcess } from '../support/kiln.js';

/**
 * No Kiln secret and no inherited descriptor reaches a sandbox. Kiln is started the way a
 * careless operator would: from a process with a secret in its environment and an extra open
 * descriptor (a file holding another secret, as `50>file` in a shell would leave it). Then code
 * in a sandbox (a function handler, and a session process) looks everywhere it can: every
 * readable /proc/<pid>/environ and cmdline, every /proc/<pid>/fd link (and which fds lack
 * close-on-exec), and every readable file of its filesystem except /proc, /sys and /usr (the
 * host's read-only system files: gigabytes, and no Kiln state lives there).
 */
const SCAN = String.raw`
const fs = require('fs');
module.exports = (needles) => {
  const hits = [];
  const open = [];
  let files = 0;
  const check = (where, text) => { for (const n of needles) if (text.includes(n)) hits.push(where); };
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    for (const f of ['environ', 'cmdline']) {
      try { check('/proc/' + pid + '/' + f, fs.readFileSync('/proc/' + pid + '/' + f, 'latin1')); } catch {}
    }
    let fds = [];
    try { fds = fs.readdirSync('/proc/' + pid + '/fd'); } catch {}
    for (const fd of fds) {
      let target = '';
      try { target = fs.readlinkSync('/proc/' + pid + '/fd/' + fd); } catch { continue; }
      check('/proc/' + pid + '/fd/' + fd + ' -> ' + target, target);
      let flags = '';
      try { flags = /flags:\s*([0-7]+)/.exec(fs.readFileSync('/proc/' + pid + '/fdinfo/' + fd, 'utf8'))[1]; } catch { continue; }
      if ((parseInt(flags, 8) & 0o2000000) === 0) open.push({ pid: Number(pid), fd: Number(fd), target });
    }
  }
  const walk = (dir) => {
    let names = [];
    try { names = fs.readdirSync(dir); } catch { return; }
    for (const name of names) {
      const p = (dir === '/' ? '' : dir) + '/' + name;
      if (p === '/proc' || p === '/sys' || p === '/usr') continue;
      let st;
      try { st = fs.lstatSync(p); } catch { continue; }
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) {
        try { check(p, fs.readFileSync(p, 'latin1')); files++; } catch {}
      }
    }
  };
  walk('/');
  return { hits, open, files, self: process.pid };
};
`;

/** An fd number Node leaves alone at start-up (it marks a few low ones close-on-exec itself). */
const EXTRA_FD = 50;

const apiKey = `key-${randomBytes(16).toString('hex')}`;
const envSecret = `env-secret-${randomBytes(16).toString('hex')}`;
const fdSecret = `fd-secret-${randomBytes(16).toString('hex')}`;
let dirs: { dataDir: string; templatesDir: string };
let fdFile: string;
let kiln: KilnProcess | undefined;
let url: string;
let prefix: string;

const call = async (method: string, path: string, body?: unknown) => {
  const res = await fetch(url + path, { method, headers: { 'x-api-key': apiKey, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
};

beforeAll(async () => {
  dirs = testDirs({ nodejs: { pool: { minIdle: 1 } }, python: null, shell: null, provided: null });
  prefix = `t${randomBytes(4).toString('hex')}`;
  fdFile = join(dirs.dataDir, 'inherited-fd-secret');
  writeFileSync(fdFile, fdSecret);
  const fd = openSync(fdFile, 'r');
  const proc = await startKilnProcess(
    {
      KILN_REDIS_URL: `unix://${inject('redisSocket')}`,
      KILN_REDIS_PREFIX: prefix,
      KILN_DATA_DIR: dirs.dataDir,
      KILN_TEMPLATES_DIR: dirs.templatesDir,
      KILN_API_KEYS: apiKey,
      KILN_TEST_SECRET: envSecret,
    },
    { [EXTRA_FD]: fd },
  );
  closeSync(fd);
  kiln = proc;
  url = proc.url;
});

afterAll(async () => {
  await disposeKilnProcess(kiln, prefix, dirs?.dataDir);
});

/** The secrets to look for: the executors' agent tokens (from the local platform's state) and ours. */
function needles(): string[] {
  const stateDir = join(dirs.dataDir, 'executors');
  const tokens = readdirSync(stateDir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => (JSON.parse(readFileSync(join(stateDir, f), 'utf8')) as { token: string }).token);
  expect(tokens.length).toBeGreaterThan(0);
  return [...tokens, apiKey, envSecret, fdSecret, fdFile];
}

type ScanResult = { hits: string[]; open: Array<{ pid: number; fd: number; target: string }>; files: number; self: number };

function expectClean(result: ScanResult, allowedFds: number[]): void {
  expect(result.hits).toEqual([]);
  expect(result.files).toBeGreaterThan(0);
  // Only stdio, plus the runner channel (3) where a runner is the scanner or its ancestor.
  for (const o of result.open) expect([o.pid, o.fd, o.target, allowedFds.includes(o.fd)]).toEqual([o.pid, o.fd, o.target, true]);
}

describe('no Kiln secret and no inherited fd reaches a sandbox', () => {
  it('a function handler finds none', async () => {
    const res = await call('POST', '/api/v1/executions', {
      language: 'nodejs',
      event: { scan: SCAN, needles: needles() },
      timeoutMs: 20_000,
      code: `exports.handler = async (e) => { const m = { exports: {} }; new Function('module', 'require', e.scan)(m, require); return m.exports(e.needles); };`,
    });
    expect(res.body.status, JSON.stringify(res.body)).toBe('succeeded');
    expectClean(res.body.result as ScanResult, [0, 1, 2, 3]);
  });

  it('a session process finds none', async () => {
    const created = await call('POST', '/api/v1/sessions', { template: 'nodejs' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = created.body.id as string;
    try {
      // The needles go in on stdin, so that they are in no cmdline or environment of their own.
      const script = `const m = { exports: {} }; new Function('module', 'require', ${JSON.stringify(SCAN)})(m, require); process.stdout.write(JSON.stringify(m.exports(JSON.parse(require('fs').readFileSync(0, 'utf8')))));`;
      const res = await call('POST', `/api/v1/sessions/${id}/process/run`, { command: 'node', args: ['-e', script], stdin: JSON.stringify(needles()), timeoutMs: 30_000 });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body.exitCode, res.body.stderr).toBe(0);
      expectClean(JSON.parse(res.body.stdout) as ScanResult, [0, 1, 2, 3]);
    } finally {
      await call('DELETE', `/api/v1/sessions/${id}`);
    }
  });

  it('the control plane and its executors closed the inherited fd', () => {
    const fds = readdirSync(`/proc/${kiln?.child.pid}/fd`).map(Number);
    expect(fds).not.toContain(EXTRA_FD);
  });
});
