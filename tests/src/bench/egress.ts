import { loadConfig } from '@kiln/control-plane/config';
import { startKiln } from '@kiln/control-plane/server';
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startTestInternet } from '../security/egress-internet.js';
import { postJson } from './http.js';
import { percentiles, type Row } from './stats.js';

const run = promisify(execFile);
const NAME = 'bench.example.test';

/**
 * One client program, run twice against the same test server (egress-internet.ts, in its own
 * network namespace): on the host, straight to the server's address (the baseline), and in an
 * egress sandbox, by name, through Kiln's DNS and proxy. Each request is a new connection (what
 * the proxy pays for: DNS, the policy, its upstream resolve and connect), then one large download.
 */
const CLIENT = String.raw`
import http.client, json, sys, time
host, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def get(path):
    c = http.client.HTTPConnection(host, 80, timeout=60); c.request('GET', path, headers={'Host': sys.argv[4]}); r = c.getresponse()
    got = 0
    while True:
        b = r.read(1 << 20)
        if not b: break
        got += len(b)
    c.close(); return got
for _ in range(5): get('/')
lat = []
for _ in range(n):
    t = time.perf_counter(); get('/'); lat.append((time.perf_counter() - t) * 1000)
t = time.perf_counter(); got = get('/bytes/%d' % size); dt = time.perf_counter() - t
print(json.dumps({'lat': lat, 'mbps': got / dt / 1e6, 'got': got}))
`;

interface Figures {
  lat: number[];
  mbps: number;
  got: number;
}

export async function benchEgress(socket: string, opts: { samples: number }): Promise<Row[]> {
  const n = Math.max(50, Math.min(opts.samples, 500));
  const size = Number(process.env.BENCH_EGRESS_MB ?? 256) * 1024 * 1024;
  const net = await startTestInternet(({ web }) => ({ [NAME]: web }), [NAME]);
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-bench-egress-'));
  chmodSync(dataDir, 0o755);
  const templatesDir = join(dataDir, 'templates');
  mkdirSync(templatesDir);
  const base = JSON.parse(readFileSync(new URL('../../../templates/nodejs.json', import.meta.url), 'utf8'));
  writeFileSync(join(templatesDir, 'nodejs.json'), JSON.stringify({ ...base, network: { allow: { domains: [NAME], cidrs: [`${net.web}/32`], ports: [80] } }, pool: { ...base.pool, minIdle: 1 } }));
  const kiln = await startKiln(
    loadConfig({ KILN_REDIS_URL: `unix://${socket}`, KILN_REDIS_PREFIX: `egress${process.pid}`, KILN_PORT: '0', KILN_HOST: '127.0.0.1', KILN_DATA_DIR: dataDir, KILN_TEMPLATES_DIR: templatesDir, KILN_EGRESS_DNS: net.dns, KILN_LOG_LEVEL: 'warn' }),
  );
  try {
    const direct = JSON.parse((await run('python3', ['-c', CLIENT, net.web, String(n), String(size), NAME], { maxBuffer: 16 << 20 })).stdout) as Figures;
    const created = await postJson(`${kiln.url}/api/v1/sessions`, { template: 'nodejs' });
    if (created.status !== 201) throw new Error(`session create failed: ${JSON.stringify(created.body)}`);
    const id = created.body.id as string;
    const res = await postJson(`${kiln.url}/api/v1/sessions/${id}/process/run`, { command: 'python3', args: ['-c', CLIENT, NAME, String(n), String(size), NAME], timeoutMs: 600_000 });
    await fetch(`${kiln.url}/api/v1/sessions/${id}`, { method: 'DELETE' });
    if (res.status !== 200 || res.body.exitCode !== 0) throw new Error(`sandbox client failed: ${JSON.stringify(res.body).slice(0, 500)}`);
    const proxied = JSON.parse(res.body.stdout as string) as Figures;
    if (proxied.got !== size || direct.got !== size) throw new Error(`short download: ${proxied.got} / ${direct.got} of ${size}`);
    const d = percentiles(direct.lat);
    const p = percentiles(proxied.lat);
    return [
      { name: 'egress: HTTP request, new connection, direct (host), p50', value: d.p50, unit: 'ms', note: `p99 ${d.p99.toFixed(2)} ms, ${n} requests (baseline)` },
      { name: 'egress: same through Kiln DNS + proxy (sandbox), p50', value: p.p50, unit: 'ms', note: `p99 ${p.p99.toFixed(2)} ms; added ${(p.p50 - d.p50).toFixed(2)} ms p50; ${(p.p50 / d.p50).toFixed(2)}x direct` },
      { name: 'egress: download throughput, direct (host)', value: direct.mbps, unit: 'MB/s', note: `${size / 1024 / 1024} MB (baseline)` },
      { name: 'egress: download throughput through the proxy', value: proxied.mbps, unit: 'MB/s', note: `${(proxied.mbps / direct.mbps).toFixed(2)}x direct` },
    ];
  } finally {
    await kiln.stop();
    net.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
