import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inSession, startTestKiln, type TestKiln } from '../support/kiln.js';

/**
 * Attacks the network barrier from inside sandboxes. The test builds its own "internet": a
 * network namespace joined to the host by a veth pair in 198.18.0.0/15 (benchmarking, denied to
 * sandboxes by default, so the outbound template opens its /30), with an HTTP server in it.
 * Targets are only loopback, the host's own addresses and that namespace. Addresses that would
 * leave the machine (metadata, private ranges, slirp's gateway) are probed with a UDP connect(),
 * which only consults the route table and sends nothing: it must fail with EACCES (a `prohibit`
 * route), so that the test itself never sends a packet anywhere, even against a broken barrier.
 */

const tag = randomBytes(3).toString('hex');
const NETNS = `kiln-inet-${tag}`;
const VETH_HOST = `ki${tag}h`;
const VETH_NS = `ki${tag}n`;
const octet = randomInt(0, 256);
const HOST_ADDR = `198.18.${octet}.1`;
const INET_ADDR = `198.18.${octet}.2`;
const INET_CIDR = `198.18.${octet}.0/30`;
const INET_PORT = 8080;
const token = randomBytes(8).toString('hex');
const OUT = `net-out-${tag}`;

let k: TestKiln;
let webRoot: string;
let web: ChildProcess | undefined;
const listeners: Server[] = [];
let portLoopback = 0;
let portVeth = 0;
let portAny = 0;

const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8' });

function listen(host: string): Promise<number> {
  const server = createServer((socket) => socket.end('host listener\n'));
  listeners.push(server);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve((server.address() as { port: number }).port));
  });
}

async function waitFor(what: string, ok: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await ok().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} not ready within ${ms} ms`);
}

beforeAll(async () => {
  // The network first: the executor reads the host's addresses (the veth's included) at each boot.
  ip('netns', 'add', NETNS);
  ip('link', 'add', VETH_HOST, 'type', 'veth', 'peer', 'name', VETH_NS);
  ip('link', 'set', VETH_NS, 'netns', NETNS);
  ip('addr', 'add', `${HOST_ADDR}/30`, 'dev', VETH_HOST);
  ip('link', 'set', VETH_HOST, 'up');
  ip('-n', NETNS, 'addr', 'add', `${INET_ADDR}/30`, 'dev', VETH_NS);
  ip('-n', NETNS, 'link', 'set', VETH_NS, 'up');
  ip('-n', NETNS, 'link', 'set', 'lo', 'up');
  webRoot = mkdtempSync(join(tmpdir(), 'kiln-inet-'));
  writeFileSync(join(webRoot, 'hello.txt'), token);
  web = spawn('ip', ['netns', 'exec', NETNS, '/usr/bin/python3', '-m', 'http.server', '--bind', INET_ADDR, '--directory', webRoot, String(INET_PORT)], { stdio: 'ignore' });
  await waitFor('test internet server', async () => (await fetch(`http://${INET_ADDR}:${INET_PORT}/hello.txt`)).ok);
  portLoopback = await listen('127.0.0.1');
  portVeth = await listen(HOST_ADDR);
  portAny = await listen('0.0.0.0');

  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 0 } }, python: null, shell: null, provided: null } });
  const base = JSON.parse(readFileSync(new URL('../../../templates/nodejs.json', import.meta.url), 'utf8'));
  const res = await k.call('POST', '/api/v1/templates', {
    ...base,
    name: OUT,
    network: { mode: 'outbound', allowCidrs: [INET_CIDR] },
    pool: { ...base.pool, minIdle: 0 },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
}, 60_000);

afterAll(async () => {
  await k?.stop();
  for (const s of listeners) s.close();
  web?.kill('SIGKILL');
  // Deleting the namespace removes its end of the veth pair and with it the host's end.
  try {
    ip('netns', 'del', NETNS);
  } catch (err) {
    process.stderr.write(`network test cleanup: ${String(err)}\n`);
  }
  if (webRoot) rmSync(webRoot, { recursive: true, force: true });
});

const withSession = <T>(template: string, fn: (id: string) => Promise<T>): Promise<T> => inSession(k, fn, { template });

async function run(id: string, command: string, args: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const res = await k.call('POST', `/api/v1/sessions/${id}/process/run`, { command, args, timeoutMs: 30_000 });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

type Probe = ['tcp' | 'udp' | 'tcp6' | 'udp6', string, number];

/**
 * Connects to each target from inside the sandbox and reports `connected` or the errno name.
 * TCP targets get a 3 s timeout (a timeout is a failure to refuse, reported as `timeout`).
 */
const PROBE = `
import errno, json, socket, sys
out = {}
for kind, host, port in json.loads(sys.argv[1]):
    fam = socket.AF_INET6 if kind.endswith('6') else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM if kind.startswith('tcp') else socket.SOCK_DGRAM)
    s.settimeout(3)
    try:
        s.connect((host, port))
        r = 'connected'
    except socket.timeout:
        r = 'timeout'
    except OSError as e:
        r = errno.errorcode.get(e.errno, str(e.errno))
    finally:
        s.close()
    out['%s:%s:%d' % (kind, host, port)] = r
print(json.dumps(out))
`;

async function probe(id: string, targets: Probe[]): Promise<Record<string, string>> {
  const res = await run(id, 'python3', ['-c', PROBE, JSON.stringify(targets)]);
  expect(res.exitCode, res.stderr).toBe(0);
  return JSON.parse(res.stdout);
}

/** Ports listening on the host's loopback and wildcard addresses, from /proc/net/tcp. */
function hostListeningPorts(): number[] {
  const ports = new Set<number>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] === '0A') ports.add(parseInt((f[1] as string).split(':')[1] as string, 16));
    }
  }
  return [...ports];
}

/** The host's own addresses (every interface but loopback), IPv4 and IPv6. */
function hostAddresses(): { v4: string[]; v6: string[] } {
  const all = Object.values(networkInterfaces()).flat().filter((a) => a && !a.internal) as Array<{ family: string; address: string; scopeid?: number }>;
  return { v4: all.filter((a) => a.family === 'IPv4').map((a) => a.address), v6: all.filter((a) => a.family === 'IPv6' && !a.scopeid).map((a) => a.address) };
}

async function agentPorts(): Promise<number[]> {
  const keys = await k.redis.keys(`${k.prefix}:exe:*`);
  const handles = await Promise.all(keys.map((key) => k.redis.get(key)));
  return handles.filter((h): h is string => !!h).map((h) => Number((JSON.parse(h).address as string).split(':').pop()));
}

const REFUSED_LOCALLY = ['EACCES', 'ENETUNREACH', 'EHOSTUNREACH'];

describe('outbound sandbox network', () => {
  it('reaches the test internet and nothing of the host, its metadata, private ranges or other sandboxes', async () => {
    const apiPort = Number(new URL(k.url).port);
    await withSession(OUT, async (other) => {
      // A second tenant's sandbox listens on its loopback and on every address it has.
      const otherPort = randomInt(20_000, 30_000);
      const started = await k.call('POST', `/api/v1/sessions/${other}/processes`, { command: 'python3', args: ['-m', 'http.server', '--bind', '0.0.0.0', String(otherPort)] });
      expect(started.status, JSON.stringify(started.body)).toBe(201);
      await withSession(OUT, async (id) => {
        await waitFor('the other sandbox listener', async () => (await run(other, 'curl', ['-sf', '-o', '/dev/null', `http://127.0.0.1:${otherPort}/`])).exitCode === 0);

        const got = await run(id, 'curl', ['-sS', '-m', '10', `http://${INET_ADDR}:${INET_PORT}/hello.txt`]);
        expect(got.stderr).toBe('');
        expect(got.stdout).toBe(token);

        const agents = await agentPorts();
        expect(agents.length).toBeGreaterThan(0);
        const hosts = hostAddresses();
        const tcp: Probe[] = [
          ['tcp', '127.0.0.1', apiPort],
          ...agents.map((p): Probe => ['tcp', '127.0.0.1', p]),
          ['tcp', '127.0.0.1', portLoopback],
          ['tcp', '127.0.0.1', portAny],
          ['tcp', HOST_ADDR, portVeth],
          ['tcp', HOST_ADDR, portAny],
          ['tcp', '127.0.0.1', otherPort],
          ['tcp', '10.0.2.100', otherPort],
          ...hosts.v4.flatMap((a): Probe[] => [['tcp', a, portAny], ['tcp', a, apiPort]]),
          ...hostListeningPorts().map((p): Probe => ['tcp', '127.0.0.1', p]),
          ['tcp6', '::1', portAny],
        ];
        const tcpResults = await probe(id, tcp);
        for (const [target, result] of Object.entries(tcpResults)) expect([target, result]).toEqual([target, expect.stringMatching(/^(ECONNREFUSED|EACCES|ENETUNREACH|EHOSTUNREACH|EADDRNOTAVAIL)$/)]);
        // The host's own addresses (the veth's included, though the template opens its /30) are fenced off by route.
        for (const a of [HOST_ADDR, ...hosts.v4]) expect(tcpResults[`tcp:${a}:${portAny}`]).toBe('EACCES');

        // Would leave the machine if the barrier gave way: route lookups only, nothing is sent.
        const offHost: Probe[] = [
          ['udp', '169.254.169.254', 80],
          ['udp', '10.0.2.2', portAny],
          ['udp', '10.0.2.5', 80],
          ['udp', '10.1.2.3', 80],
          ['udp', '172.16.0.1', 80],
          ['udp', '192.168.0.1', 80],
          ['udp', '100.64.0.1', 80],
          ['udp', '198.19.0.1', 80],
          ['udp6', 'fd00:ec2::254', 80],
          ['udp6', 'fc00::1', 80],
          ...hosts.v6.map((a): Probe => ['udp6', a, portAny]),
        ];
        for (const [target, result] of Object.entries(await probe(id, offHost))) expect([target, REFUSED_LOCALLY.includes(result)]).toEqual([target, true]);
        // Only slirp's DNS forwarder is routable in its subnet; the route lookup sends nothing.
        expect(await probe(id, [['udp', '10.0.2.3', 53]])).toEqual({ 'udp:10.0.2.3:53': 'connected' });

        // The sandbox cannot undo it: it has no capability over its own network namespace.
        const undo = await run(id, 'ip', ['route', 'del', 'prohibit', '169.254.0.0/16']);
        expect(undo.exitCode).not.toBe(0);
        expect((await probe(id, [['udp', '169.254.169.254', 80]]))['udp:169.254.169.254:80']).toBe('EACCES');
        // DNS goes to slirp4netns's forwarder inside the sandbox's network, not the host's resolver.
        expect((await run(id, 'cat', ['/etc/resolv.conf'])).stdout).toBe('nameserver 10.0.2.3\n');
      });
    });
  }, 90_000);

  it('a network "none" sandbox reaches nothing', async () => {
    await withSession('nodejs', async (id) => {
      const results = await probe(id, [
        ['tcp', INET_ADDR, INET_PORT],
        ['tcp', '127.0.0.1', Number(new URL(k.url).port)],
        ['tcp', '127.0.0.1', portAny],
        ['udp', '169.254.169.254', 80],
        ['udp', '198.51.100.1', 80],
        ['udp6', 'fd00:ec2::254', 80],
      ]);
      expect(results).toEqual({
        [`tcp:${INET_ADDR}:${INET_PORT}`]: 'ENETUNREACH',
        [`tcp:127.0.0.1:${new URL(k.url).port}`]: 'ECONNREFUSED',
        [`tcp:127.0.0.1:${portAny}`]: 'ECONNREFUSED',
        'udp:169.254.169.254:80': 'ENETUNREACH',
        'udp:198.51.100.1:80': 'ENETUNREACH',
        'udp6:fd00:ec2::254:80': 'ENETUNREACH',
      });
      expect((await run(id, 'cat', ['/etc/resolv.conf'])).exitCode).not.toBe(0);
    });
  }, 60_000);
});

describe('template network field', () => {
  it('refuses malformed or forbidden allowCidrs with a 400 and a code', async () => {
    const base = JSON.parse(readFileSync(new URL('../../../templates/nodejs.json', import.meta.url), 'utf8'));
    for (const network of [
      { mode: 'outbound', allowCidrs: ['10.0.0.1/8'] },
      { mode: 'outbound', allowCidrs: ['0.0.0.0/0'] },
      { mode: 'outbound', allowCidrs: ['169.254.169.254/32'] },
      { mode: 'outbound', allowCidrs: ['fd00::/8'] },
      { mode: 'outbound', allowCidrs: ['10.0.0.0/33'] },
      { mode: 'none', allowCidrs: ['10.0.0.0/8'] },
      { mode: 'outbound', allowCidr: ['10.0.0.0/8'] },
      'open',
    ]) {
      const res = await k.call('POST', '/api/v1/templates', { ...base, name: `bad-${tag}`, network });
      expect([JSON.stringify(network), res.status, res.body.error?.code]).toEqual([JSON.stringify(network), 400, 'InvalidRequest']);
      expect(res.body.error?.message).toMatch(/^network/);
    }
    const doc = await k.call('GET', '/api/v1/openapi.json');
    expect(JSON.stringify(doc.body.components.schemas.Template.properties.network)).toContain('allowCidrs');
  });
});
