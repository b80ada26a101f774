import type { RemoteInfo, Socket as UdpSocket } from 'node:dgram';
import type { Resolver } from 'node:dns/promises';
import { connect, type Server, type Socket } from 'node:net';
import { connect as tlsConnect, TLSSocket } from 'node:tls';
import { replayed, type TlsInterceptor } from './intercept.js';
import { AuditLog, type EgressEvent } from './audit.js';
import { buildAnswer, parseQuery, RCODE, TYPE_A } from './dns-wire.js';
import type { NetnsListeners } from './listeners.js';
import { decideAddress, decideBoth, decideName, domainMatches, widening, EgressPolicyError, type EgressPolicy, type Verdict } from './policy.js';
import { injectSecrets, secretProblem, type BoundSecret } from './secrets.js';
import { sniff, SNIFF_MAX_BYTES } from './sniff.js';

/** Kiln's DNS answers for allowed names: addresses in 127.100/16 of the sandbox's own loopback. */
const FAKE_PREFIX = '127.100.';
const FAKE_MAX = 65_000;
const CONNECT_TIMEOUT_MS = 10_000;
/** The longest an upstream DNS answer is reused, whatever its TTL. */
const RESOLVE_CACHE_MAX_MS = 30_000;
/** Names one sandbox's cache holds before it starts over. */
const RESOLVE_CACHE_NAMES = 1024;
/**
 * Connections one sandbox may have open through the proxy at once: each holds two of the
 * executor's descriptors, which every sandbox on it shares.
 */
export const MAX_CONNECTIONS = 256;

const v4 = (addr: string | undefined): string => (addr ?? '').replace(/^::ffff:/, '');

/**
 * One sandbox's egress: its policies, its DNS responder and its connection proxy, served from
 * listeners that live in the sandbox's network namespace (listeners.ts) while every upstream
 * socket is the executor's own, in the host's network. The sandbox's namespace has no route out:
 * every IPv4 address is local there, so what it reaches is only these listeners.
 *
 * Names: the DNS responder answers an allowed name with an address of its own (127.100.x.y,
 * stable per name) and remembers which name it stands for; a connection to that address is a
 * connection to the name, made by Kiln to an address the host's resolver gives. A TLS
 * ClientHello's SNI and an HTTP request's Host must be allowed names too. IP literals are judged
 * by the CIDR rules (and `all`), never by a name.
 */
export class SandboxEgress {
  private session: EgressPolicy | undefined;
  private readonly nameOf = new Map<string, string>();
  private readonly addressOf = new Map<string, string>();
  readonly audit = new AuditLog();
  private readonly sockets = new Set<Socket>();
  private secrets: BoundSecret[] = [];
  /** Upstream answers by name, until their TTL ends (resolve). */
  private readonly resolved = new Map<string, { addresses: string[]; until: number }>();
  /** Client connections open now (MAX_CONNECTIONS). */
  private open = 0;

  constructor(
    readonly sandboxId: string,
    /** The ceiling: the template's policy, or what the control plane widened it to (setPolicy). */
    public template: EgressPolicy,
    private readonly listeners: NetnsListeners,
    private readonly resolver: Resolver,
    private readonly hostAddresses: () => ReadonlySet<string>,
    /** Ends TLS for names bound to an `https` secret; absent: this executor has no egress CA. */
    private readonly interceptor?: TlsInterceptor,
  ) {
    for (const server of listeners.tcp.values()) this.serve(server);
    listeners.udp.on('message', (msg, from) => void this.answerDns(listeners.udp, msg, from).catch((err: unknown) => this.failed('dns', err)));
    // A socket error (e.g. an ICMP error for an answer) must not take the executor down.
    listeners.udp.on('error', () => undefined);
  }

  get policy(): EgressPolicy {
    return this.session ?? this.template;
  }

  /**
   * Replaces the session policy, which must lie within the ceiling (the template's, or `ceiling`
   * when given: the control plane's widening by the tenant's grant); throws EgressPolicyError.
   */
  setPolicy(p: EgressPolicy, ceiling?: EgressPolicy): void {
    const wider = widening(ceiling ?? this.template, p);
    if (wider.length) throw new EgressPolicyError(`the policy is wider than the ${ceiling ? 'ceiling sent with it' : "template's"}: ${wider.join('; ')}`);
    if (ceiling) this.template = ceiling;
    this.session = p;
  }

  /** Binds secrets (replacing those with the same placeholder); throws EgressPolicyError on a bad one. */
  setSecrets(list: readonly BoundSecret[]): void {
    for (const sec of list) {
      const problem = secretProblem(sec);
      if (problem) throw new EgressPolicyError(`secret ${sec.placeholder.slice(0, 40)}: ${problem}`);
      if (sec.https && !this.interceptor) throw new EgressPolicyError(`secret ${sec.placeholder.slice(0, 40)}: HTTPS injection needs an egress CA, and this executor has none (KILN_EGRESS_CA_CERT, KILN_EGRESS_CA_KEY)`);
    }
    const placeholders = new Set(list.map((x) => x.placeholder));
    this.secrets = [...this.secrets.filter((x) => !placeholders.has(x.placeholder)), ...list];
  }

  close(): void {
    for (const s of this.listeners.tcp.values()) s.close();
    this.listeners.udp.close();
    for (const s of this.sockets) s.destroy();
  }

  private policies(): EgressPolicy[] {
    return this.session ? [this.template, this.session] : [this.template];
  }

  private record(e: Partial<EgressEvent> & Pick<EgressEvent, 'protocol' | 'allowed' | 'rule'>): void {
    this.audit.add({ domain: '', ip: '', port: 0, bytesIn: 0, bytesOut: 0, detail: '', ...e });
  }

  /** A fault of Kiln's own while serving the sandbox: recorded in its audit, never thrown at the executor. */
  private failed(protocol: EgressEvent['protocol'], err: unknown): void {
    this.record({ protocol, allowed: false, rule: 'error', detail: `egress proxy error: ${err instanceof Error ? err.message : String(err)}` });
  }

  /**
   * The host resolver's addresses for an allowed name, kept for their TTL (at most
   * RESOLVE_CACHE_MAX_MS): a sandbox's DNS question (A and AAAA) and its connection each needed
   * an upstream question before, which was most of the proxy's added latency per request. Per
   * sandbox, so no sandbox learns from timing what another asked. Every connection still checks
   * the addresses against the policy (decideAddress).
   */
  private async resolve(name: string): Promise<string[]> {
    const hit = this.resolved.get(name);
    if (hit && hit.until > Date.now()) return hit.addresses;
    const records = await this.resolver.resolve4(name, { ttl: true });
    const ttlMs = Math.min(RESOLVE_CACHE_MAX_MS, Math.min(...records.map((r) => r.ttl)) * 1000);
    const addresses = records.map((r) => r.address);
    if (this.resolved.size >= RESOLVE_CACHE_NAMES) this.resolved.clear();
    if (ttlMs > 0) this.resolved.set(name, { addresses, until: Date.now() + ttlMs });
    return addresses;
  }

  private fakeAddress(name: string): string | undefined {
    let ip = this.addressOf.get(name);
    if (ip) return ip;
    const n = this.addressOf.size + 1;
    if (n > FAKE_MAX) return undefined;
    ip = `${FAKE_PREFIX}${Math.floor(n / 256)}.${n % 256}`;
    this.addressOf.set(name, ip);
    this.nameOf.set(ip, name);
    return ip;
  }

  private async answerDns(udp: UdpSocket, msg: Buffer, from: RemoteInfo): Promise<void> {
    const q = parseQuery(msg);
    if (!q) return;
    const reply = (rcode: number, addresses: string[] = []): void => {
      // The sandbox may be gone (its socket closed) by the time an upstream answer comes.
      try {
        udp.send(buildAnswer(q, rcode, addresses), from.port, from.address);
      } catch {
        /* nobody left to answer */
      }
    };
    const verdict = decideBoth(this.policies(), (p) => decideName(p, q.name));
    if (!verdict.allowed) {
      this.record({ protocol: 'dns', domain: q.name, allowed: false, rule: verdict.rule });
      return reply(RCODE.refused);
    }
    let addresses: string[];
    try {
      addresses = await this.resolve(q.name);
    } catch (err) {
      const code = (err as { code?: string }).code;
      const rcode = code === 'ENOTFOUND' || code === 'ENODATA' ? (code === 'ENOTFOUND' ? RCODE.nxDomain : RCODE.noError) : RCODE.servFail;
      this.record({ protocol: 'dns', domain: q.name, allowed: true, rule: verdict.rule, detail: `upstream: ${code ?? 'error'}` });
      return reply(rcode);
    }
    this.record({ protocol: 'dns', domain: q.name, allowed: true, rule: verdict.rule, detail: addresses.join(',') });
    if (q.type !== TYPE_A) return reply(RCODE.noError);
    const fake = this.fakeAddress(q.name);
    reply(fake ? RCODE.noError : RCODE.servFail, fake ? [fake] : []);
  }

  private serve(server: Server): void {
    server.on('connection', (client) => void this.proxy(client).catch((err: unknown) => {
      client.destroy();
      this.failed('tcp', err);
    }));
    server.on('error', () => undefined);
  }

  /**
   * Decides a new connection, connects upstream, then holds the client's first bytes until they
   * say what it is (TLS: SNI; HTTP: Host; anything else passes on the destination's verdict).
   * The server may speak first (SSH, SMTP): its bytes flow at once.
   */
  private async proxy(client: Socket): Promise<void> {
    client.on('error', () => undefined);
    if (this.open >= MAX_CONNECTIONS) {
      this.record({ protocol: 'tcp', ip: v4(client.localAddress), port: client.localPort ?? 0, allowed: false, rule: 'limit', detail: `more than ${MAX_CONNECTIONS} connections open` });
      client.resetAndDestroy();
      return;
    }
    this.sockets.add(client);
    this.open++;
    client.once('close', () => {
      this.sockets.delete(client);
      this.open--;
    });
    const ip = v4(client.localAddress);
    const port = client.localPort ?? 0;
    const name = this.nameOf.get(ip);
    const policies = this.policies();
    const ev = { protocol: 'tcp' as EgressEvent['protocol'], domain: name ?? '', ip, port, detail: '' };
    const refuse = (v: Verdict, detail = ''): void => {
      this.record({ ...ev, allowed: false, rule: v.rule, detail });
      client.resetAndDestroy();
    };
    // Bytes that arrive while Kiln decides are buffered.
    const held: Buffer[] = [];
    let heldBytes = 0;
    const onData = (b: Buffer): void => {
      held.push(b);
      heldBytes += b.length;
    };
    client.on('data', onData);
    client.pause();

    let target = ip;
    let verdict: Verdict;
    if (ip.startsWith(FAKE_PREFIX) && !name) return refuse({ allowed: false, rule: 'unknown-address' }, 'not an address Kiln DNS gave');
    if (name) {
      verdict = decideBoth(policies, (p) => decideName(p, name, port));
      if (!verdict.allowed) return refuse(verdict);
      let addresses: string[];
      try {
        addresses = await this.resolve(name);
      } catch (err) {
        return refuse({ allowed: false, rule: verdict.rule }, `resolving ${name}: ${(err as { code?: string }).code ?? 'failed'}`);
      }
      const hosts = this.hostAddresses();
      const verdicts = addresses.map((a) => ({ a, v: decideBoth(policies, (p) => decideAddress(p, a, port, false, hosts)) }));
      const ok = verdicts.find((x) => x.v.allowed);
      if (!ok) return refuse(verdicts[0]?.v ?? { allowed: false, rule: 'no-address' }, `${name} resolves to ${addresses.join(',') || 'nothing'}`);
      target = ok.a;
      ev.ip = target;
      // The sandbox may have given up while the name resolved: nothing to connect for.
      if (client.destroyed) return;
    } else {
      verdict = decideBoth(policies, (p) => decideAddress(p, ip, port, true, this.hostAddresses()));
      if (!verdict.allowed) return refuse(verdict);
    }

    const upstream = connect({ host: target, port, timeout: CONNECT_TIMEOUT_MS });
    this.sockets.add(upstream);
    upstream.once('close', () => this.sockets.delete(upstream));
    let bytesIn = 0;
    let bytesOut = 0;
    let decided = false;
    let recorded = false;
    const finish = (): void => {
      if (recorded) return;
      this.record({ ...ev, allowed: true, rule: verdict.rule, bytesIn, bytesOut });
    };
    upstream.on('error', (err) => {
      if (!decided || bytesIn + bytesOut === 0) {
        recorded = true;
        this.record({ ...ev, allowed: true, rule: verdict.rule, detail: `upstream: ${(err as { code?: string }).code ?? err.message}` });
      }
      client.resetAndDestroy();
    });
    upstream.on('timeout', () => upstream.destroy(new Error('connect timeout')));
    upstream.once('connect', () => upstream.setTimeout(0));
    const fromUpstream = (b: Buffer): void => {
      bytesIn += b.length;
      if (!client.write(b)) upstream.pause();
    };
    const clientDrained = (): void => void upstream.resume();
    const upstreamEnded = (): void => void client.end();
    const clientEnded = (): void => void upstream.end();
    upstream.on('data', fromUpstream);
    client.on('drain', clientDrained);
    upstream.on('end', upstreamEnded);
    client.on('end', clientEnded);
    client.once('close', () => {
      upstream.destroy();
      finish();
    });

    const inspect = (): void => {
      const first = Buffer.concat(held);
      const s = sniff(first);
      if (s.kind === 'partial' && first.length < SNIFF_MAX_BYTES) return;
      client.off('data', onData);
      client.off('data', inspect);
      decided = true;
      if (name && (s.kind === 'tls' || s.kind === 'http')) {
        const said = s.kind === 'tls' ? s.sni : s.host;
        ev.protocol = s.kind;
        const v = said ? decideBoth(policies, (p) => decideName(p, said, port)) : { allowed: false, rule: s.kind === 'tls' ? 'tls-without-sni' : 'http-without-host' };
        if (!v.allowed) {
          recorded = true;
          upstream.destroy();
          return refuse(v, `${s.kind === 'tls' ? 'SNI' : 'Host'} ${said ?? '(none)'} on a connection to ${name}`);
        }
        if (said !== name) ev.domain = `${name} (${s.kind === 'tls' ? 'SNI' : 'Host'} ${said})`;
      } else if (s.kind === 'tls' || s.kind === 'http') ev.protocol = s.kind;
      // TLS to the very name of an `https` secret: Kiln ends it and speaks TLS to the host itself.
      const https = s.kind === 'tls' && name && s.sni === name && this.interceptor ? this.secrets.filter((x) => x.https && x.hosts.some((p) => domainMatches(p, name))) : [];
      if (https.length && name && this.interceptor) {
        upstream.off('data', fromUpstream);
        upstream.off('end', upstreamEnded);
        client.off('end', clientEnded);
        client.off('drain', clientDrained);
        const count = { in: (n: number) => void (bytesIn += n), out: (n: number) => void (bytesOut += n) };
        this.intercept(client, upstream, first, name, https, this.interceptor, ev, count).catch((err: unknown) => {
          recorded = true;
          this.record({ ...ev, allowed: true, rule: verdict.rule, detail: `https interception: ${err instanceof Error ? err.message : String(err)}` });
          upstream.destroy();
          client.resetAndDestroy();
        });
        return;
      }
      let out = first;
      // Secrets go only into plain HTTP to the very name the connection was made to.
      if (s.kind === 'http' && name && s.host === name && this.secrets.length) {
        const text = first.toString('latin1');
        const end = text.indexOf('\r\n\r\n') + 4;
        const head = injectSecrets(text.slice(0, end), name, this.secrets);
        if (head !== undefined) {
          out = Buffer.concat([Buffer.from(head, 'latin1'), first.subarray(end)]);
          ev.detail = 'secrets injected';
        }
      }
      bytesOut += out.length;
      upstream.write(out);
      client.on('data', (b: Buffer) => {
        bytesOut += b.length;
        if (!upstream.write(b)) client.pause();
      });
      upstream.on('drain', () => client.resume());
    };
    client.on('data', inspect);
    client.resume();
    if (heldBytes > 0) inspect();
  }

  /**
   * Ends the sandbox's TLS with Kiln's certificate for `name`, opens TLS over `upstream` to the
   * real host (verified: a host whose certificate does not check out never sees the request),
   * reads the one request (its Host must be `name`), puts the secrets in and relays the rest.
   * `Connection: close` (injectSecrets) keeps it to that request.
   */
  private async intercept(client: Socket, upstream: Socket, first: Buffer, name: string, secrets: readonly BoundSecret[], interceptor: TlsInterceptor, ev: { detail: string; protocol: EgressEvent['protocol'] }, count: { in(n: number): void; out(n: number): void }): Promise<void> {
    const context = await interceptor.context(name);
    if (client.destroyed) return;
    const inner = new TLSSocket(replayed(client, first), { isServer: true, secureContext: context, ALPNProtocols: ['http/1.1'] });
    const outer = tlsConnect({ socket: upstream, servername: name, ca: interceptor.upstreamCa, ALPNProtocols: ['http/1.1'] });
    ev.protocol = 'tls';
    ev.detail = 'https intercepted';
    const fail = (why: string) => (err?: Error): void => {
      // The first outcome stays (a refusal, or the first side to fail).
      if (ev.detail === 'https intercepted') ev.detail = `https intercepted; ${why} error: ${err?.message ?? 'closed'}`;
      inner.destroy();
      outer.destroy();
      client.destroy();
    };
    const upstreamVerified = new Promise<boolean>((resolve) => {
      outer.once('secureConnect', () => resolve(true));
      outer.once('close', () => resolve(false));
    });
    inner.on('error', fail('sandbox-side TLS'));
    outer.on('error', fail('upstream TLS'));
    inner.on('close', () => outer.destroy());
    outer.on('close', () => inner.destroy());
    const held: Buffer[] = [];
    const onData = (b: Buffer): void => {
      held.push(b);
      const head = Buffer.concat(held);
      const s = sniff(head);
      if (s.kind === 'partial' && head.length < SNIFF_MAX_BYTES) return;
      inner.off('data', onData);
      if (s.kind !== 'http' || s.host !== name) {
        ev.detail = `https intercepted; refused: ${s.kind === 'http' ? `Host ${s.host ?? '(none)'}` : 'not HTTP/1'} inside TLS to ${name}`;
        fail('request')();
        return;
      }
      const text = head.toString('latin1');
      const end = text.indexOf('\r\n\r\n') + 4;
      const injected = injectSecrets(text.slice(0, end), name, secrets);
      const out = injected === undefined ? head : Buffer.concat([Buffer.from(injected, 'latin1'), head.subarray(end)]);
      // Held until the real host's certificate has checked out: TLS would not send it before,
      // but the audit must say "injected" only for a request that really left toward that host.
      inner.pause();
      void upstreamVerified.then((ok) => {
        if (!ok) return;
        if (injected !== undefined) ev.detail = 'https intercepted; secrets injected';
        count.out(out.length);
        outer.write(out);
        inner.on('data', (c: Buffer) => {
          count.out(c.length);
          if (!outer.write(c)) inner.pause();
        });
        outer.on('drain', () => inner.resume());
        inner.resume();
      });
    };
    inner.on('data', onData);
    outer.on('data', (c: Buffer) => {
      count.in(c.length);
      if (!inner.write(c)) outer.pause();
    });
    inner.on('drain', () => outer.resume());
    outer.on('end', () => inner.end());
    inner.on('end', () => outer.end());
  }
}
