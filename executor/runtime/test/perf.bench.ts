// Boot/memory/latency figures for the runners, direct and under bubblewrap: a benchmark, not a
// test (figures on a shared machine are noise for a pass/fail), so `npm test` does not run it.
// `npm run bench:runners` does, and prints the table.
// Set KILN_RUNTIME_PERF_INVOKES to change the hot-loop size (default 1000).
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FIXTURES_DIR, MODES, Runner, cleanupScratch, makeTask, type Runtime } from './harness.js';

const HOT_INVOKES = Number(process.env.KILN_RUNTIME_PERF_INVOKES ?? 1000);
const BOOTS = 7;

// A minimal keep-alive Runtime API client, to show the provided runner's own overhead
// (the bash tutorial bootstrap mostly measures fork/exec of curl, grep, cut...).
const NODE_BOOTSTRAP = `#!/usr/bin/node
const http = require('http');
const [host, port] = process.env.AWS_LAMBDA_RUNTIME_API.split(':');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const call = (method, path, body) => new Promise((resolve, reject) => {
  const r = http.request({ host, port, method, path, agent }, (res) => {
    const c = []; res.on('data', (d) => c.push(d)); res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(c) }));
  });
  r.on('error', reject); r.end(body);
});
(async () => { for (;;) {
  const next = await call('GET', '/2018-06-01/runtime/invocation/next');
  const id = next.headers['lambda-runtime-aws-request-id'];
  await call('POST', '/2018-06-01/runtime/invocation/' + id + '/response', '{"ok":true}');
} })();
`;

interface Case {
  name: string;
  runtime: Runtime;
  files?: Record<string, string>;
  modes?: Record<string, number>;
  dir?: string;
  handler: string;
  invokes: number;
}
const CASES: Case[] = [
  {
    name: 'nodejs',
    runtime: 'nodejs',
    files: { 'index.js': 'exports.handler = async (event) => ({ ok: true });' },
    handler: 'index.handler',
    invokes: HOT_INVOKES,
  },
  {
    name: 'python',
    runtime: 'python',
    files: { 'index.py': 'def handler(event, context):\n    return {"ok": True}\n' },
    handler: 'index.handler',
    invokes: HOT_INVOKES,
  },
  { name: 'prov/node', runtime: 'provided', files: { bootstrap: NODE_BOOTSTRAP }, modes: { bootstrap: 0o755 }, handler: 'x.y', invokes: HOT_INVOKES },
  { name: 'prov/bash', runtime: 'provided', dir: join(FIXTURES_DIR, 'provided-tutorial'), handler: 'function.pretty', invokes: Math.min(HOT_INVOKES, 200) },
];

const ms = (a: bigint, b: bigint) => Number(b - a) / 1e6;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;
const f1 = (x: number) => x.toFixed(1);
const f2 = (x: number) => x.toFixed(2);
const mb = (kb: number) => (kb / 1024).toFixed(1);

const rows: string[] = [];
const poolRows: string[] = [];
afterAll(() => {
  cleanupScratch();
  // eslint-disable-next-line no-console
  console.log(
    [
      '',
      'runtime   mode    boot→ready ms (median)  idle RSS / PSS / anon MB   load ms  1st invoke ms  hot p50 / p99 ms (n)   RSS after hot MB',
      ...rows,
      '',
      'pool of 10 idle runners (bwrap)   Σ RSS MB   Σ PSS MB   Σ anon MB   per extra runner (PSS) MB',
      ...poolRows,
      '',
    ].join('\n'),
  );
});

for (const t of CASES) {
  const runtime = t.runtime;
  for (const mode of MODES) {
    describe(`${t.name} (${mode.name})`, () => {
      it('measures boot, idle memory, load, first and hot invokes', async () => {
        const taskDir = t.dir ?? makeTask(t.files!, t.modes);

        // Boot-to-ready over several fresh runners; idle memory of the last one.
        const boots: number[] = [];
        let runner: Runner | undefined;
        for (let i = 0; i < BOOTS; i++) {
          if (runner) await runner.shutdown();
          runner = await Runner.start({ runtime, taskDir, sandbox: mode.sandbox });
          boots.push(ms(runner.spawnedAt, runner.ready._at));
        }
        runner = runner!;
        await new Promise((r) => setTimeout(r, 300));
        const idle = runner.memory();

        // load + first invoke of a trivial handler.
        const l0 = process.hrtime.bigint();
        const loaded = await runner.load(t.handler);
        const l1 = process.hrtime.bigint();
        expect(loaded.type).toBe('loaded');
        const first = await runner.invoke({ first: true });
        const l2 = process.hrtime.bigint();
        expect(first.result.ok).toBe(true);

        // Hot loop: invoke message -> result message round trip.
        const lat: number[] = [];
        for (let i = 0; i < t.invokes; i++) {
          const a = process.hrtime.bigint();
          const { result } = await runner.invoke({ i });
          lat.push(ms(a, result._at));
          if (!result.ok) throw new Error(JSON.stringify(result));
        }
        const after = runner.memory();
        await runner.shutdown();

        rows.push(
          [
            t.name.padEnd(9),
            mode.name.padEnd(7),
            `${f1(median(boots))} (${boots.map(f1).join(',')})`.padEnd(24),
            `${mb(idle.rssKb)} / ${mb(idle.pssKb)} / ${mb(idle.anonKb)}`.padEnd(27),
            f1(ms(l0, l1)).padEnd(8),
            f1(ms(l1, l2)).padEnd(14),
            `${f2(median(lat))} / ${f2(pct(lat, 0.99))} (${lat.length})`.padEnd(22),
            mb(after.rssKb),
          ].join(' '),
        );

        // Loose guards (the real numbers are in the table).
        // Loose on purpose: CI machines are shared and noisy.
        expect(median(boots)).toBeLessThan(3000);
        expect(idle.anonKb).toBeLessThan(runtime === 'python' ? 12 * 1024 : 16 * 1024);
        expect(median(lat)).toBeLessThan(t.name === 'prov/bash' ? 2000 : 50);
      });
    });
  }
}

// What a pool of pre-booted sandboxes really costs: RSS counts the interpreter's
// shared file pages in every process, PSS splits them between the processes.
for (const runtime of ['nodejs', 'python'] as Runtime[]) {
  describe(`pool of idle ${runtime} runners`, () => {
    it('measures the memory of 10 idle runners', async () => {
      const taskDir = makeTask({});
      const pool = await Promise.all(Array.from({ length: 10 }, () => Runner.start({ runtime, taskDir, sandbox: true })));
      await new Promise((r) => setTimeout(r, 500));
      const mem = pool.map((r) => r.memory());
      const one = await Runner.start({ runtime, taskDir, sandbox: true });
      await new Promise((r) => setTimeout(r, 300));
      const withOneMore = [...pool, one].map((r) => r.memory());
      await Promise.all([...pool, one].map((r) => r.shutdown()));
      const sum = (xs: typeof mem, k: keyof (typeof mem)[number]) => xs.reduce((a, m) => a + m[k], 0);
      poolRows.push(
        [
          runtime.padEnd(34),
          mb(sum(mem, 'rssKb')).padEnd(10),
          mb(sum(mem, 'pssKb')).padEnd(10),
          mb(sum(mem, 'anonKb')).padEnd(11),
          mb(sum(withOneMore, 'pssKb') - sum(mem, 'pssKb')),
        ].join(' '),
      );
      expect(sum(mem, 'pssKb')).toBeLessThan(sum(mem, 'rssKb'));
    });
  });
}
