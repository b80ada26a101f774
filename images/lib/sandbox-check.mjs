#!/usr/bin/env node
// Proves, through the Docker-compatible API (Podman's `podman system service`
// or a Docker engine), that Kiln's template images can run bubblewrap
// sandboxes as the non-root user with the documented container options.
//
//   node images/lib/sandbox-check.mjs [--socket PATH] [--matrix] [--executor]
//
//   (default)   run bwrap in each template image as kiln with HOST_CONFIG below
//   --matrix    also try each weaker/stronger option set and report which work
//   --executor  also start the real executor (default ENTRYPOINT) with a
//               published agent port on 127.0.0.1 and wait until it accepts TCP
//   --bench N   time N x (create + start + wait + remove) of `node -e 0` in the
//               nodejs image through the API, with NetworkMode none and bridge
//   --userns-auto  add UsernsMode "auto" (Podman only) to every check
//
// Socket: --socket, else $KILN_PODMAN_SOCK, else $DOCKER_HOST (unix://...),
// else <repo>/.kiln/podman/podman.sock. Uses only node:http (the same JSON
// dockerode sends: `docker.createContainer({ Image, User, Cmd, HostConfig })`).
// Exits non-zero if a default check fails. Prints "N passed, N failed".
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const args = process.argv.slice(2);
const flag = (f) => args.includes(f);
const opt = (f) => {
  const i = args.indexOf(f);
  return i >= 0 ? args[i + 1] : undefined;
};
const SOCKET =
  opt('--socket') ??
  process.env.KILN_PODMAN_SOCK ??
  (process.env.DOCKER_HOST?.startsWith('unix://') ? process.env.DOCKER_HOST.slice(7) : undefined) ??
  path.join(REPO, '.kiln/podman/podman.sock');
const API = '/v1.41';

const SECCOMP_FILE = path.join(REPO, 'infra/podman/seccomp.json');

/**
 * The container options Kiln's executors need for bubblewrap (images/README.md).
 * The seccomp profile goes by path to Podman (the service reads the file) and
 * by content to Docker (the CLI normally reads the file client-side).
 */
export function hostConfig(isPodman) {
  const seccomp = isPodman ? SECCOMP_FILE : JSON.stringify(JSON.parse(fs.readFileSync(SECCOMP_FILE, 'utf8')));
  return {
    CapDrop: ['ALL'],
    SecurityOpt: ['no-new-privileges', 'systempaths=unconfined', `seccomp=${seccomp}`],
    NetworkMode: 'none',
    // --userns-auto: Podman picks a private host uid range per container.
    ...(flag('--userns-auto') ? { UsernsMode: 'auto' } : {}),
  };
}

function request(method, urlPath, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      {
        socketPath: SOCKET,
        method,
        path: urlPath,
        headers: data ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } : {},
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
      },
    );
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}
async function api(method, urlPath, body) {
  const res = await request(method, API + urlPath, body);
  if (res.status >= 400) {
    let msg = res.body.toString();
    try {
      msg = JSON.parse(msg).message ?? msg;
    } catch {}
    throw new Error(`${method} ${urlPath}: ${res.status} ${msg.trim()}`);
  }
  const text = res.body.toString();
  try {
    return JSON.parse(text);
  } catch {
    return res.body;
  }
}
/** Docker's multiplexed log stream (8-byte frame headers) -> text. */
function demux(buf) {
  let out = '';
  let i = 0;
  while (i + 8 <= buf.length && buf[i] <= 2 && buf[i + 1] === 0) {
    const len = buf.readUInt32BE(i + 4);
    out += buf.subarray(i + 8, i + 8 + len).toString();
    i += 8 + len;
  }
  return i === 0 ? buf.toString() : out;
}

/** create + start + wait + logs + remove; returns { code, output, ms }. */
async function runOnce(image, cmd, hostConfig, extra = {}) {
  const t0 = performance.now();
  const { Id } = await api('POST', '/containers/create', { Image: image, User: 'kiln', Cmd: cmd, HostConfig: hostConfig, ...extra });
  try {
    await api('POST', `/containers/${Id}/start`);
    const { StatusCode } = await api('POST', `/containers/${Id}/wait`);
    const logs = await api('GET', `/containers/${Id}/logs?stdout=1&stderr=1`);
    return { code: StatusCode, output: demux(Buffer.isBuffer(logs) ? logs : Buffer.from(JSON.stringify(logs))).trim(), ms: performance.now() - t0 };
  } finally {
    await api('DELETE', `/containers/${Id}?force=1`).catch(() => {});
  }
}

const bwrap = (...cmd) => [
  'bwrap',
  '--ro-bind',
  '/usr',
  '/usr',
  '--symlink',
  'usr/lib',
  '/lib',
  '--symlink',
  'usr/lib64',
  '/lib64',
  '--symlink',
  'usr/bin',
  '/bin',
  '--proc',
  '/proc',
  '--dev',
  '/dev',
  '--tmpfs',
  '/tmp',
  '--unshare-all',
  '--hostname',
  'sandbox',
  '--die-with-parent',
  '--new-session',
  '--uid',
  '1000',
  '--gid',
  '1000',
  '--cap-drop',
  'ALL',
  '--',
  ...cmd,
];

function templateImage(name) {
  const file = path.join(REPO, 'templates', `${name}.json`);
  if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8')).image;
  return `localhost/kiln/template-${name}:0.1.0`;
}

let passed = 0;
let failed = 0;
async function check(label, fn) {
  try {
    const detail = await fn();
    passed++;
    console.log(`ok    ${label}${detail ? `: ${detail}` : ''}`);
  } catch (err) {
    failed++;
    console.log(`FAIL  ${label}: ${err.message}`);
  }
}
async function expectOutput(image, cmd, want, hostConfig = HOST_CONFIG) {
  const r = await runOnce(image, cmd, hostConfig);
  if (r.code !== 0 || !r.output.includes(want)) throw new Error(`exit ${r.code}, output: ${JSON.stringify(r.output.slice(-300))}`);
  return `${JSON.stringify(r.output.split('\n').pop())} (${Math.round(r.ms)} ms)`;
}

const ping = await request('GET', '/_ping').catch((e) => ({ status: 0, body: Buffer.from(e.message) }));
if (ping.body.toString() !== 'OK') {
  console.error(`no Docker-compatible API on ${SOCKET}: ${ping.body.toString()} (bash scripts/podman/service.sh start)`);
  process.exit(1);
}
const version = await api('GET', '/version');
const isPodman = (version.Components ?? []).some((c) => /podman/i.test(c.Name));
const HOST_CONFIG = hostConfig(isPodman);
console.log(`API ${SOCKET}: ${version.Components?.[0]?.Name ?? 'Docker'} ${version.Version}, API ${version.ApiVersion}`);
console.log(`HostConfig: ${JSON.stringify(HOST_CONFIG).slice(0, 300)}, User: kiln`);

const nodejs = templateImage('nodejs');
const python = templateImage('python');
const shell = templateImage('shell');
const provided = templateImage('provided');

await check(`${nodejs}: bwrap node as kiln`, () => expectOutput(nodejs, bwrap('/usr/bin/node', '-e', 'console.log(6 * 7, process.getuid())'), '42 1000'));
await check(`${nodejs}: sandbox has its own pid namespace and no network`, () =>
  expectOutput(nodejs, bwrap('/usr/bin/node', '-e', 'console.log(process.pid, Object.keys(require("os").networkInterfaces()).join(","))'), '2 lo'),
);
// Running a command inside a live sandbox the way an executor can as a
// non-root user: bwrap without --dev (with --dev it nests a second user
// namespace to mount devpts, and the sandbox's other namespaces then belong to
// one a non-root joiner can't get capabilities in), and nsenter with
// --preserve-credentials (setgroups is denied in unprivileged user namespaces).
// Needs setns + chroot from the seccomp profile.
await check(`${shell}: nsenter into a running sandbox (no caps, uid 1000)`, () => {
  const dev = ['null', 'zero', 'full', 'random', 'urandom', 'tty'].flatMap((d) => ['--dev-bind', `/dev/${d}`, `/dev/${d}`]);
  const sandbox = bwrap('/usr/bin/sleep', '30')
    .join(' ')
    .replace('--dev /dev', ['--tmpfs', '/dev', ...dev, '--tmpfs', '/dev/shm'].join(' '));
  const script = [
    `${sandbox} &`,
    'for i in $(seq 50); do for p in /proc/[0-9]*; do [ "$(tr "\\0" " " <$p/cmdline 2>/dev/null)" = "/usr/bin/sleep 30 " ] && P=${p#/proc/}; done; [ -n "$P" ] && break; sleep 0.1; done',
    'exec /usr/bin/setpriv --no-new-privs -- /usr/bin/nsenter --target=$P --user --mount --pid --net --ipc --uts --preserve-credentials --root --wd ' +
      '/usr/bin/env -i -- /usr/bin/bash -c \'echo "$(cat /proc/sys/kernel/hostname) $(id -u) $(grep CapEff /proc/self/status | tr -d "\t")"\'',
  ].join('\n');
  return expectOutput(shell, ['/bin/bash', '-c', script], 'sandbox 1000 CapEff:0000000000000000');
});
await check(`${python}: bwrap python3 as kiln`, () => expectOutput(python, bwrap('/usr/bin/python3', '-c', 'import os; print(6 * 7, os.getuid())'), '42 1000'));
await check(`${shell}: bwrap bash + jq + curl`, () =>
  expectOutput(shell, bwrap('/usr/bin/bash', '-c', 'curl --version >/dev/null && echo "{\\"n\\": $((6*7))}" | jq .n'), '42'),
);
await check(`${provided}: /bin/sh is bash, curl present`, () =>
  expectOutput(provided, bwrap('/bin/sh', '-c', 'command -v curl >/dev/null && echo "bash=${BASH_VERSION%%.*}"'), 'bash=5'),
);

if (flag('--matrix')) {
  console.log('\nOption matrix (bwrap node in the nodejs image, user kiln):');
  const cmd = bwrap('/usr/bin/node', '-e', 'console.log(42)');
  const variants = [
    ['no security options at all', { NetworkMode: 'none' }],
    ['CapDrop ALL + no-new-privileges (masked /proc)', { CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges'], NetworkMode: 'none' }],
    [
      '+ MaskedPaths: [] / ReadonlyPaths: [] (Docker API fields)',
      { CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges'], MaskedPaths: [], ReadonlyPaths: [], NetworkMode: 'none' },
    ],
    ['+ seccomp=unconfined only (masked /proc)', { CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges', 'seccomp=unconfined'], NetworkMode: 'none' }],
    ...(isPodman
      ? [
          [
            "+ systempaths=unconfined, Podman's default seccomp (bwrap --hostname)",
            {
              CapDrop: ['ALL'],
              SecurityOpt: ['no-new-privileges', 'systempaths=unconfined', 'seccomp=/usr/share/containers/seccomp.json'],
              NetworkMode: 'none',
            },
          ],
        ]
      : []),
    ['+ systempaths=unconfined + Kiln seccomp (RECOMMENDED)', HOST_CONFIG],
    [
      '+ unmask=/proc/* + Kiln seccomp (podman only)',
      { ...HOST_CONFIG, SecurityOpt: HOST_CONFIG.SecurityOpt.map((o) => (o === 'systempaths=unconfined' ? 'unmask=/proc/*' : o)) },
    ],
    ['+ systempaths=unconfined + seccomp=unconfined', { ...HOST_CONFIG, SecurityOpt: ['no-new-privileges', 'systempaths=unconfined', 'seccomp=unconfined'] }],
    ['+ systempaths=unconfined + ReadonlyRootfs + PidsLimit', { ...HOST_CONFIG, ReadonlyRootfs: true, PidsLimit: 256 }],
    ['+ systempaths=unconfined + UsernsMode auto (podman; own host uid range)', { ...HOST_CONFIG, UsernsMode: 'auto' }],
  ];
  for (const [label, hc] of variants) {
    try {
      const r = await runOnce(nodejs, cmd, hc);
      const ok = r.code === 0 && r.output.trim().endsWith('42');
      console.log(`  ${ok ? 'works ' : 'fails '} ${label}${ok ? '' : `: ${r.output.split('\n').pop()}`}`);
    } catch (err) {
      console.log(`  error  ${label}: ${err.message}`);
    }
  }
}

if (flag('--executor')) {
  await check(`${nodejs}: executor (default ENTRYPOINT) listens on its published agent port`, async () => {
    const { Id } = await api('POST', '/containers/create', {
      Image: nodejs,
      Env: ['KILN_AGENT_LISTEN=0.0.0.0:7070', 'KILN_AGENT_TOKEN=sandbox-check', 'KILN_EXECUTOR_ID=sandbox-check', 'KILN_TEMPLATE=nodejs'],
      ExposedPorts: { '7070/tcp': {} },
      HostConfig: {
        ...HOST_CONFIG,
        NetworkMode: 'bridge',
        PortBindings: { '7070/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] },
      },
    });
    try {
      await api('POST', `/containers/${Id}/start`);
      const info = await api('GET', `/containers/${Id}/json`);
      const port = Number(info.NetworkSettings?.Ports?.['7070/tcp']?.[0]?.HostPort);
      if (!port) throw new Error(`no published port: ${JSON.stringify(info.NetworkSettings?.Ports)}`);
      const deadline = Date.now() + 15000;
      for (;;) {
        const ok = await new Promise((resolve) => {
          const s = net.connect({ host: '127.0.0.1', port }, () => {
            s.destroy();
            resolve(true);
          });
          s.on('error', () => resolve(false));
        });
        if (ok) break;
        const st = await api('GET', `/containers/${Id}/json`);
        if (!st.State?.Running || Date.now() > deadline) {
          const logs = demux(await api('GET', `/containers/${Id}/logs?stdout=1&stderr=1`));
          throw new Error(`not listening on 127.0.0.1:${port} (running=${st.State?.Running}); logs: ${logs.slice(-400)}`);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      const t0 = performance.now();
      await api('POST', `/containers/${Id}/stop?t=10`);
      return `listening on 127.0.0.1:${port}; stop took ${Math.round(performance.now() - t0)} ms`;
    } finally {
      await api('DELETE', `/containers/${Id}?force=1`).catch(() => {});
    }
  });
}

const benchN = Number(opt('--bench') ?? 0);
if (benchN > 0) {
  console.log(`\nAPI container round trip (create+start+wait+remove) of \`node -e 0\` in ${nodejs}, user kiln:`);
  for (const [label, hc] of [
    ['NetworkMode none        ', HOST_CONFIG],
    ['NetworkMode bridge      ', { ...HOST_CONFIG, NetworkMode: 'bridge' }],
    ['none + UsernsMode auto  ', { ...HOST_CONFIG, UsernsMode: 'auto' }],
  ]) {
    const ms = [];
    for (let i = 0; i < benchN; i++) {
      const r = await runOnce(nodejs, ['node', '-e', '0'], hc);
      if (r.code !== 0) throw new Error(`bench run failed: ${r.output}`);
      ms.push(Math.round(r.ms));
    }
    const sorted = [...ms].sort((a, b) => a - b);
    console.log(`  ${label}: median ${sorted[Math.floor(sorted.length / 2)]} ms, min ${sorted[0]} ms, max ${sorted.at(-1)} ms  [${ms.join(', ')}]`);
  }
}

console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
