import { Resolver } from 'node:dns/promises';
import type { BootContext, BootStep } from '../sandbox/boot-step.js';
import { hostAddresses } from '../sandbox/network.js';
import type { SandboxSpec } from '../sandbox/spec.js';
import { openListeners } from './listeners.js';
import { SandboxEgress } from './sandbox-egress.js';
import type { TlsInterceptor } from './intercept.js';

/**
 * The boot step of sandboxes whose template has an egress policy (spec.egress): while bwrap holds
 * the sandbox before its first exec, it opens the egress listeners in the sandbox's network
 * namespace (listeners.ts) and starts serving them. Such a sandbox gets no slirp4netns: it has no
 * route off its namespace at all, only Kiln's proxy and DNS.
 */
export class EgressStep implements BootStep {
  readonly name = 'egress';
  private readonly sandboxes = new Map<string, SandboxEgress>();
  private readonly resolver: Resolver;

  /** Set once the executor has loaded its egress CA (main.ts); sandboxes booted after get it. */
  interceptor: TlsInterceptor | undefined;

  constructor(opts: { upstreamDns?: readonly string[]; nsenterPath?: string } = {}) {
    this.resolver = new Resolver({ timeout: 2_000, tries: 2 });
    if (opts.upstreamDns?.length) this.resolver.setServers([...opts.upstreamDns]);
    this.nsenterPath = opts.nsenterPath ?? 'nsenter';
  }

  private readonly nsenterPath: string;

  async attach(ctx: BootContext): Promise<void> {
    const policy = ctx.spec.egress;
    if (!policy) return;
    const listeners = await openListeners(ctx.namespacePid, policy.allow.ports, this.nsenterPath);
    this.sandboxes.set(ctx.spec.id, new SandboxEgress(ctx.spec.id, policy, listeners, this.resolver, () => new Set(hostAddresses()), this.interceptor));
  }

  release(spec: SandboxSpec): Promise<void> {
    this.sandboxes.get(spec.id)?.close();
    this.sandboxes.delete(spec.id);
    return Promise.resolve();
  }

  /** The egress of a sandbox, or undefined when it has none (no policy, or gone). */
  get(sandboxId: string): SandboxEgress | undefined {
    return this.sandboxes.get(sandboxId);
  }
}
