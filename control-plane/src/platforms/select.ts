import type { Config } from '../config.js';
import { log } from '../log.js';
import type { PlatformKind, Template } from '../templates/template.js';
import { DockerPlatform } from './docker.js';
import { KubernetesPlatform } from './kubernetes/kubernetes.js';
import { kubernetesPlatformOptions } from './kubernetes/options.js';
import { LocalPlatform } from './local.js';
import type { ExecutorHandle, Platform } from './platform.js';
import type { UidRanges } from './uids/ranges.js';

/** What adapters need besides configuration. */
export interface PlatformDeps {
  /** Host uid ranges for local executors (the container platforms run sandboxes in their own user namespaces). */
  uids: UidRanges;
}

/** The adapters a template can name in its `platform` field (KILN_PLATFORM picks the default). */
export type { PlatformKind } from '../templates/template.js';

/** One adapter for one kind: the only place that maps configuration to an adapter. */
export function createPlatform(kind: PlatformKind, config: Config, executorMain: string, deps: PlatformDeps): Platform {
  switch (kind) {
    case 'local':
      return new LocalPlatform({ deployment: config.prefix, dataDir: config.dataDir, executorMain, nfsBind: config.nfs?.bind, uids: deps.uids, egressDns: config.egressDns, egressCa: config.egressCa, volumeIdleUnmountMs: config.volumeIdleUnmountMs });
    case 'docker':
      return new DockerPlatform({
        deployment: config.prefix,
        host: config.docker.host,
        network: config.docker.network,
        seccompProfile: config.docker.seccompProfile,
        startTimeoutMs: config.docker.startTimeoutMs,
        nfs: config.nfs !== undefined,
      });
    case 'kubernetes':
      return new KubernetesPlatform(kubernetesPlatformOptions(config));
  }
}

/**
 * The platform the scheduler sees: each template's executors go to the adapter its `platform`
 * field names, or to KILN_PLATFORM's. Adapters are made on first use, so a deployment that never
 * names docker never needs a container engine. `list` and `stop` cover the adapters that the
 * current templates use (as after a restart, when nothing was started yet).
 */
export class PlatformRouter implements Platform {
  readonly kind = 'router';
  private readonly adapters = new Map<PlatformKind, Platform>();

  constructor(
    private readonly config: Config,
    private readonly executorMain: string,
    /** The current templates; their `executor` fields say which adapters are in use. */
    private readonly templates: () => Template[],
    private readonly deps: PlatformDeps,
  ) {}

  start(template: Template, executorId: string): Promise<ExecutorHandle> {
    return this.adapter(template.platform ?? this.config.platform).start(template, executorId);
  }

  async stop(executorId: string): Promise<void> {
    // Each adapter treats an id it does not own as unknown, a no-op. One that fails (a cluster
    // that cannot be reached) must not keep the others from stopping theirs: each is tried,
    // then the first failure is reported.
    const results = await Promise.allSettled(this.inUse().map((r) => r.stop(executorId)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** Every reachable adapter's executors; an adapter that fails is logged and left out. */
  async list(): Promise<ExecutorHandle[]> {
    const adapters = this.inUse();
    const results = await Promise.allSettled(adapters.map((r) => r.list()));
    return results.flatMap((r, i) => {
      if (r.status === 'fulfilled') return r.value;
      log('warn', 'could not list executors of a platform adapter', { platform: adapters[i]?.kind, error: String(r.reason) });
      return [];
    });
  }

  async close(): Promise<void> {
    for (const runtime of this.adapters.values()) {
      await runtime.close().catch((err: unknown) => log('warn', 'a platform adapter failed to close', { runtime: runtime.kind, error: String(err) }));
    }
  }

  private inUse(): Platform[] {
    const kinds = new Set<PlatformKind>([this.config.platform, ...this.adapters.keys()]);
    for (const t of this.templates()) if (t.platform) kinds.add(t.platform);
    const out: Platform[] = [];
    for (const kind of kinds) {
      try {
        out.push(this.adapter(kind));
      } catch (err) {
        // A template naming an adapter this deployment cannot make must not stop the others
        // from being listed or stopped; starting its executors reports the same error.
        log('warn', 'platform adapter unavailable', { kind, error: (err as Error).message });
      }
    }
    return out;
  }

  private adapter(kind: PlatformKind): Platform {
    let runtime = this.adapters.get(kind);
    if (!runtime) {
      runtime = createPlatform(kind, this.config, this.executorMain, this.deps);
      this.adapters.set(kind, runtime);
    }
    return runtime;
  }
}
