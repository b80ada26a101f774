import { spawn, type ChildProcess } from 'node:child_process';
import { networkInterfaces } from 'node:os';
import type { Readable } from 'node:stream';
import type { BootContext, BootStep } from './boot-step.js';
import { formatCidr4, NEVER_ALLOWED, overlaps, parseCidr4, type Cidr4 } from './cidr.js';
import type { SandboxSpec } from './spec.js';

/**
 * Destinations an outbound sandbox never reaches unless its template allows them: the host's
 * loopback and "this network", private ranges (RFC 1918, carrier-grade NAT), link-local (cloud
 * metadata at 169.254.169.254), IETF protocol assignments, benchmarking, multicast and reserved.
 * IPv6 is off altogether (slirp4netns runs without it), which covers fd00:ec2::254, fc00::/7, fe80::/10.
 */
export const DENIED_CIDRS = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.168.0.0/16',
  '198.18.0.0/15',
  '224.0.0.0/4',
  '240.0.0.0/4',
];

/** slirp4netns's network inside the sandbox (its defaults): the sandbox is .100. */
const SLIRP_GATEWAY = '10.0.2.2';
const SLIRP_DNS = '10.0.2.3';
const TAP = 'tap0';
const START_TIMEOUT_MS = 5_000;

export class SandboxNetworkError extends Error {
  constructor(
    readonly sandboxId: string,
    message: string,
  ) {
    super(`network of sandbox ${sandboxId}: ${message}`);
    this.name = 'SandboxNetworkError';
  }
}

/**
 * Checks a template's allowed CIDRs (the control plane has already validated them; this is the
 * executor's own guard, as the agent port is an API of its own). Throws on anything malformed or
 * overlapping a range that is never allowed.
 */
export function parseAllowCidrs(sandboxId: string, cidrs: readonly string[]): Cidr4[] {
  return cidrs.map((text) => {
    const cidr = parseCidr4(text);
    if (!cidr) throw new SandboxNetworkError(sandboxId, `allowCidrs: "${text}" is not an IPv4 CIDR such as 198.51.100.0/24`);
    if (NEVER_ALLOWED.some((n) => overlaps(n, cidr))) throw new SandboxNetworkError(sandboxId, `allowCidrs: ${text} overlaps loopback, link-local, multicast or reserved addresses`);
    return cidr;
  });
}

/** The executor's own IPv4 addresses, read at each boot (interfaces come and go). */
export function hostAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((a) => a !== undefined && a.family === 'IPv4' && !a.internal)
    .map((a) => (a as { address: string }).address);
}

/**
 * The `ip -batch` script that confines a sandbox's network namespace. Order matters: `replace`
 * overrides a route of the same prefix, so each group wins over the ones before it, and longer
 * prefixes win anyway. Denied ranges → the template's allowed ones → the slirp subnet (only its
 * DNS forwarder is usable: slirp maps other addresses there to the host's loopback) → each of the
 * host's own addresses, which no template can open. `prohibit` fails connect() with EACCES at once.
 */
export function routeScript(allow: readonly Cidr4[], hostAddrs: readonly string[]): string {
  const lines = DENIED_CIDRS.map((c) => `route add prohibit ${c}`);
  for (const c of allow) lines.push(`route replace ${formatCidr4(c)} via ${SLIRP_GATEWAY} dev ${TAP}`);
  lines.push('route replace prohibit 10.0.2.0/25', 'route replace prohibit 10.0.2.128/25', `route replace ${SLIRP_DNS}/32 dev ${TAP}`);
  for (const a of hostAddrs) lines.push(`route replace prohibit ${a}/32`);
  lines.push('route add prohibit ::/0');
  return lines.join('\n') + '\n';
}

/**
 * Gives an outbound sandbox its own network: bwrap always unshares the network namespace, and
 * for sandboxes with network this step plugs slirp4netns (user-mode NAT: the sandbox's
 * connections become the executor's sockets on the host) into it, then fences off, with routes
 * set from outside as the namespace's owner, everything but the internet. The sandbox's
 * processes have no capability in their namespace and cannot change the routes back.
 */
export class OutboundNetwork implements BootStep {
  readonly name = 'network';
  private readonly slirps = new Map<string, ChildProcess>();
  private readonly isRoot = process.getuid?.() === 0;

  constructor(
    private readonly opts: {
      /** slirp4netns binary; default from PATH. */
      slirpPath?: string;
      nsenterPath?: string;
      /** The host's addresses to fence off; default: the executor's IPv4 interface addresses. */
      hostAddresses?: () => string[];
    } = {},
  ) {}

  async attach(ctx: BootContext): Promise<void> {
    const { spec } = ctx;
    if (!spec.allowNetwork) return;
    const allow = parseAllowCidrs(spec.id, spec.allowCidrs ?? []);
    await this.startSlirp(ctx);
    await this.confine(ctx.namespacePid, spec.id, routeScript(allow, (this.opts.hostAddresses ?? hostAddresses)()));
  }

  async release(spec: SandboxSpec): Promise<void> {
    const slirp = this.slirps.get(spec.id);
    this.slirps.delete(spec.id);
    if (!slirp || slirp.exitCode !== null || slirp.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => slirp.once('exit', () => resolve()));
    slirp.kill('SIGKILL');
    await exited;
  }

  /**
   * Starts slirp4netns on the sandbox's namespaces and waits for it to configure tap0, always
   * with its own seccomp filter. As root it joins the network namespace by pid and confines
   * itself further (--enable-sandbox: a mount namespace of its own, every capability dropped but
   * CAP_NET_BIND_SERVICE once the tap is open); it cannot run as the sandbox's uid, as
   * /dev/net/tun is usually root-only on hosts. A non-root executor (in a container) owns the
   * sandbox's user namespace and joins it first; there --enable-sandbox fails (it needs uid 0
   * mapped in that namespace, and bwrap maps only the sandbox's uid), and slirp4netns runs as
   * the executor's unprivileged uid anyway. fd 4 is its exit fd: the executor holds the other
   * end, so slirp4netns exits with the executor even on SIGKILL.
   */
  private startSlirp(ctx: BootContext): Promise<void> {
    const { spec, namespacePid: pid } = ctx;
    const target = this.isRoot
      ? ['--enable-sandbox', String(pid)]
      : [`--userns-path=/proc/${pid}/ns/user`, '--netns-type=path', `/proc/${pid}/ns/net`];
    const args = ['--configure', '--mtu=65520', '--disable-host-loopback', '--enable-seccomp', '--ready-fd=3', '--exit-fd=4', ...target, TAP];
    const child = spawn(this.opts.slirpPath ?? 'slirp4netns', args, { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
    this.slirps.set(spec.id, child);
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < 4096) stderr += d;
    });
    return new Promise<void>((resolve, reject) => {
      const ready = child.stdio[3] as Readable;
      const fail = (why: string): void => {
        clearTimeout(timer);
        reject(new SandboxNetworkError(spec.id, `slirp4netns ${why}${stderr ? `: ${stderr.trim().slice(-500)}` : ''}`));
      };
      const timer = setTimeout(() => fail(`did not configure the network within ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
      ready.once('data', () => {
        clearTimeout(timer);
        resolve();
      });
      // Either fd closing with the process is expected; its exit says why.
      ready.on('error', () => undefined);
      (child.stdio[4] as Readable).on('error', () => undefined);
      child.once('error', (err) => fail(`could not start: ${err.message}`));
      child.once('exit', (code, signal) => fail(`exited (${signal ?? `status ${code}`})`));
    });
  }

  /** Runs the route script inside the sandbox's network namespace, as its owner. */
  private confine(pid: number, sandboxId: string, script: string): Promise<void> {
    // Root joins only the network namespace (it holds CAP_NET_ADMIN over every namespace). A
    // non-root executor (in a container) joins the sandbox's user namespace first, which it owns;
    // the capabilities that gives are lost at exec (its uid is not 0 there) unless nsenter keeps
    // them as ambient ones: --keep-caps, util-linux 2.39 or later. Without it the boot fails,
    // closed: an outbound sandbox never runs with an unfenced network.
    const join = this.isRoot ? ['-n'] : ['-U', '-n', '--preserve-credentials', '--keep-caps'];
    const argv = [
      '-t', String(pid), ...join, '--',
      '/bin/sh', '-c', `echo 1 > /proc/sys/net/ipv6/conf/${TAP}/disable_ipv6 && exec ip -batch -`,
    ];
    return new Promise<void>((resolve, reject) => {
      const child = spawn(this.opts.nsenterPath ?? 'nsenter', argv, { stdio: ['pipe', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        if (stderr.length < 4096) stderr += d;
      });
      child.once('error', (err) => reject(new SandboxNetworkError(sandboxId, `nsenter could not start: ${err.message}`)));
      child.once('exit', (code, signal) => {
        if (code === 0) resolve();
        else reject(new SandboxNetworkError(sandboxId, `setting routes failed (${signal ?? `status ${code}`}): ${stderr.trim().slice(-500)}`));
      });
      child.stdin.end(script);
    });
  }
}
