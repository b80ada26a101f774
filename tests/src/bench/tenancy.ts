import { loadConfig } from '@kiln/control-plane/config';
import { startKiln, type Kiln } from '@kiln/control-plane/server';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { postJson } from './http.js';
import { percentiles, sequential, type Row } from './stats.js';

const NODEJS_TEMPLATE = fileURLToPath(new URL('../../../templates/nodejs.json', import.meta.url));
const ADMIN = 'bench-admin-key-0123456789abcdef';
const TRIVIAL = 'exports.handler = async (e) => ({ sum: e.a + e.b })';
/** Holds its sandbox 50 ms: eight sandboxes then run ~150 jobs/s, slower than the flood arrives, so a backlog builds. */
const HOLDS = 'exports.handler = async (e) => { await new Promise((r) => setTimeout(r, 50)); return { sum: e.a + e.b } }';
/** Sandboxes of the fair-share template: small, so the flood saturates it. */
const FAIR_SANDBOXES = 8;

/** A control plane with only the nodejs template (queue deep enough for the flood), with or without keys. */
async function start(socket: string, name: string, env: Record<string, string>, maxSandboxes?: number): Promise<{ kiln: Kiln; stop: () => Promise<void> }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-bench-'));
  chmodSync(dataDir, 0o755);
  const templatesDir = join(dataDir, 'templates');
  mkdirSync(templatesDir);
  const t = JSON.parse(readFileSync(NODEJS_TEMPLATE, 'utf8'));
  t.queue.maxWaiting = 1_000_000;
  if (maxSandboxes !== undefined) t.pool.maxSandboxes = maxSandboxes;
  writeFileSync(join(templatesDir, 'nodejs.json'), JSON.stringify(t));
  const kiln = await startKiln(
    loadConfig({
      KILN_REDIS_URL: `unix://${socket}`,
      KILN_REDIS_PREFIX: `bench${name}${process.pid}`,
      KILN_PORT: '0',
      KILN_HOST: '127.0.0.1',
      KILN_DATA_DIR: dataDir,
      KILN_TEMPLATES_DIR: templatesDir,
      KILN_LOG_LEVEL: 'error',
      ...env,
    }),
  );
  return {
    kiln,
    stop: async () => {
      await kiln.stop({ stopExecutors: true });
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

const bearer = (key: string | undefined): Record<string, string> => (key ? { authorization: `Bearer ${key}` } : {});

async function getJson(url: string, key: string): Promise<any> {
  const res = await fetch(url, { headers: bearer(key) });
  return res.json();
}

/** A stored key of a new tenant, made over the admin API (the common case: cached after its first use). */
async function tenantKey(kiln: Kiln, tenant: string): Promise<string> {
  const admin = bearer(ADMIN);
  if ((await postJson(`${kiln.url}/api/v1/admin/tenants`, { id: tenant }, admin)).status !== 201) throw new Error(`could not create tenant ${tenant}`);
  const key = await postJson(`${kiln.url}/api/v1/admin/tenants/${tenant}/keys`, {}, admin);
  return key.body.key as string;
}

async function deploy(kiln: Kiln, key: string | undefined, name: string, source = TRIVIAL): Promise<void> {
  const res = await postJson(`${kiln.url}/api/v1/functions`, { name, runtime: 'nodejs20.x', code: { source } }, bearer(key));
  if (res.status !== 201) throw new Error(`could not deploy ${name}: ${JSON.stringify(res.body)}`);
}

/** Runs `fn` over `items` from `clients` concurrent loops. */
async function pool<T, R>(items: T[], clients: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i] as T);
      }
    }),
  );
  return out;
}

/**
 * (a) What authentication and ownership cost on the hot invoke path: sequential sync invocations
 * of a deployed function, hot, on a control plane with keys (a stored key, Bearer) and one with
 * none (the implicit principal), measured in alternating rounds so both see the same noise.
 */
async function authCost(socket: string, samples: number): Promise<Row[]> {
  const open = await start(socket, 'open', {});
  const keyed = await start(socket, 'keyed', { KILN_ADMIN_API_KEYS: ADMIN });
  try {
    await deploy(open.kiln, undefined, 'hello');
    const key = await tenantKey(keyed.kiln, 'bench');
    await deploy(keyed.kiln, key, 'hello');
    const invoke = (kiln: Kiln, k: string | undefined) => async (): Promise<void> => {
      const res = await postJson(`${kiln.url}/api/v1/functions/hello/invocations`, { a: 1, b: 2 }, bearer(k));
      if (res.body?.result?.sum !== 3) throw new Error(`unexpected answer ${JSON.stringify(res.body)}`);
    };
    await sequential(300, invoke(open.kiln, undefined));
    await sequential(300, invoke(keyed.kiln, key));
    const rounds = 5;
    const none: number[] = [];
    const withKeys: number[] = [];
    for (let r = 0; r < rounds; r++) {
      none.push(...(await sequential(Math.ceil(samples / rounds), invoke(open.kiln, undefined))));
      withKeys.push(...(await sequential(Math.ceil(samples / rounds), invoke(keyed.kiln, key))));
    }
    const a = percentiles(none);
    const b = percentiles(withKeys);
    return [
      { name: 'hot function invoke p50, no keys (implicit principal)', value: a.p50, unit: 'ms' },
      { name: 'hot function invoke p50, stored key (auth + ownership)', value: b.p50, unit: 'ms', note: `${(b.p50 / a.p50).toFixed(2)}× no keys` },
      { name: 'hot function invoke p99, no keys / stored key', value: a.p99, unit: 'ms', note: `stored key ${b.p99.toFixed(2)} ms` },
    ];
  } finally {
    await keyed.stop();
    await open.stop();
  }
}

interface Started {
  submittedAt: number;
  startedAt: number;
  finishedAt: number;
  queuedMs: number;
}

/** When each job was submitted, started and finished, from its execution record. */
async function records(kiln: Kiln, key: string, ids: string[]): Promise<Started[]> {
  return pool(ids, 16, async (id) => {
    for (;;) {
      const r = await getJson(`${kiln.url}/api/v1/executions/${id}`, key);
      if (r.status === 'succeeded') {
        const submittedAt = Date.parse(r.createdAt as string);
        return { submittedAt, startedAt: submittedAt + (r.timings.queuedMs as number), finishedAt: Date.parse(r.finishedAt as string), queuedMs: r.timings.queuedMs as number };
      }
      if (r.status !== 'queued' && r.status !== 'running') throw new Error(`job ${id} ended ${JSON.stringify(r)}`);
      await new Promise((res) => setTimeout(res, 100));
    }
  });
}

/**
 * (b) Fair share: tenant A queues `floodJobs` async invocations on a nodejs template of
 * FAIR_SANDBOXES sandboxes, then tenant B queues `fewJobs`. How long until all of B's have started, B's and A's waits (queued
 * time) at p50, and how many of A's jobs finished while B waited (from B's first submission to
 * its last start): with fair share, few; FIFO would make B wait for all of A's backlog.
 */
async function fairShare(socket: string, floodJobs: number, fewJobs: number): Promise<Row[]> {
  const k = await start(socket, 'fair', { KILN_ADMIN_API_KEYS: ADMIN }, FAIR_SANDBOXES);
  try {
    const keyA = await tenantKey(k.kiln, 'flood');
    const keyB = await tenantKey(k.kiln, 'few');
    // B's function has run once, but the flood's instances take every sandbox: B's jobs include
    // the cold starts of B's function on sandboxes evicted from A (as in production).
    for (const key of [keyA, keyB]) {
      await deploy(k.kiln, key, 'work', HOLDS);
      if ((await postJson(`${k.kiln.url}/api/v1/functions/work/invocations`, { a: 1, b: 2 }, bearer(key))).body?.result?.sum !== 3) throw new Error('warm-up failed');
    }
    const submit = (key: string) => async (): Promise<string> => {
      const res = await postJson(`${k.kiln.url}/api/v1/functions/work/invocations?type=Event`, { a: 1, b: 2 }, bearer(key));
      if (res.status !== 202) throw new Error(`submit: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body.id as string;
    };
    const t0 = Date.now();
    const idsA = await pool(Array.from({ length: floodJobs }), 32, submit(keyA));
    const floodSubmitMs = Date.now() - t0;
    const bFirst = Date.now();
    const idsB = await pool(Array.from({ length: fewJobs }), 10, submit(keyB));
    const b = await records(k.kiln, keyB, idsB);
    const a = await records(k.kiln, keyA, idsA);
    const bLastStart = Math.max(...b.map((r) => r.startedAt));
    const aDoneWhileBWaited = a.filter((r) => r.finishedAt >= bFirst && r.finishedAt <= bLastStart).length;
    const aBacklog = a.filter((r) => r.startedAt > bFirst).length;
    const aLastFinish = Math.max(...a.map((r) => r.finishedAt));
    const waitB = percentiles(b.map((r) => r.queuedMs));
    const waitA = percentiles(a.map((r) => r.queuedMs));
    return [
      { name: `fair share: A's ${floodJobs} async jobs submitted in`, value: floodSubmitMs, unit: 'ms', note: `A's backlog not yet started when B submitted: ${aBacklog}` },
      { name: `fair share: all of B's ${fewJobs} jobs started after`, value: bLastStart - bFirst, unit: 'ms', note: `A's backlog drained ${aLastFinish - bFirst} ms after B's first submit` },
      { name: 'fair share: B wait (queued) p50', value: waitB.p50, unit: 'ms', note: `${(waitB.p50 / waitA.p50).toFixed(3)}× A's` },
      { name: 'fair share: A wait (queued) p50', value: waitA.p50, unit: 'ms' },
      { name: 'fair share: A jobs finished while B waited', value: aDoneWhileBWaited, unit: 'jobs', note: `of ${floodJobs}` },
    ];
  } finally {
    await k.stop();
  }
}

/** `BENCH_ONLY=tenancy npm run bench`; BENCH_TENANCY_FLOOD / BENCH_TENANCY_FEW size the fair-share run. */
export async function benchTenancy(socket: string, opts: { samples: number }): Promise<Row[]> {
  const rows = await authCost(socket, opts.samples);
  rows.push(...(await fairShare(socket, Number(process.env.BENCH_TENANCY_FLOOD ?? 10_000), Number(process.env.BENCH_TENANCY_FEW ?? 100))));
  return rows;
}
