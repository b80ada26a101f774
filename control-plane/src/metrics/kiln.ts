import type { ExecutionRecord } from '../invocation/contract.js';
import type { ExecutionObserver } from '../invocation/outcome.js';
import { logContext } from '../log.js';
import type { ExecutionQueues } from '../queue/queues.js';
import type { LeaseCache } from '../scheduler/lease-cache.js';
import type { SandboxRecords } from '../scheduler/records.js';
import type { SessionStore } from '../sessions/records.js';
import type { TemplateRegistry } from '../templates/registry.js';
import { Counter, Gauge, Histogram, MetricsRegistry } from './registry.js';
import { TenantLabel, type TenantLabelOptions } from './tenant-label.js';

/** Latency buckets in seconds, from a hot start (~1 ms) to a long handler. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** What the metrics read besides the pools, and how they label tenants. */
export interface KilnMetricsOptions {
  /** Live sessions, for `kiln_sessions`; absent: no such gauge. */
  sessions?: Pick<SessionStore, 'all'>;
  /** Default: a tenant label on, at most 100 tenants. */
  tenantLabel?: TenantLabelOptions;
}

/**
 * Kiln's metrics. Counters and the histogram are per replica (Prometheus sums replicas);
 * queue depths, pool sizes and sessions are read from Redis at scrape time, so every replica
 * reports the same deployment-wide values. Invocation counters, latency, errors and sessions
 * carry a `tenant` label unless it is turned off, bounded by TenantLabel's cap.
 */
export class KilnMetrics implements ExecutionObserver {
  readonly registry = new MetricsRegistry();
  private readonly queueJobs = this.registry.register(new Gauge('kiln_queue_jobs', 'Jobs in each template queue by state (waiting, active)'));
  private readonly poolSandboxes = this.registry.register(
    new Gauge('kiln_pool_sandboxes', 'Sandboxes per template by state: idle_warm, idle_hot, busy, booting, reaping'),
  );
  private readonly executors = this.registry.register(new Gauge('kiln_executors', 'Executors per template'));
  private readonly starts = this.registry.register(new Counter('kiln_invocation_starts_total', 'Invocations by template and start type (hot, warm, cold)'));
  private readonly latency = this.registry.register(
    new Histogram('kiln_invocation_duration_seconds', 'Invocation latency from submission to result, by template and start type', LATENCY_BUCKETS),
  );
  private readonly errors = this.registry.register(
    new Counter('kiln_errors_total', 'Errors by type: handler errorType, Kiln.<code> platform errors, throttling'),
  );
  private readonly sessions = this.registry.register(new Gauge('kiln_sessions', 'Live sessions by template (and tenant)'));
  private readonly tenants: TenantLabel;

  /** `leases` tells which leased sandboxes are only parked on this replica (idle, not busy). */
  constructor(
    records: Pick<SandboxRecords, 'snapshot' | 'executorIds'>,
    templates: TemplateRegistry,
    queues: ExecutionQueues,
    leases: Pick<LeaseCache, 'holds'>,
    options: KilnMetricsOptions = {},
  ) {
    this.tenants = new TenantLabel(options.tenantLabel ?? { enabled: true, maxTenants: 100 });
    const sessionSource = options.sessions;
    if (sessionSource) this.registry.collect(() => this.countSessions(sessionSource));
    this.registry.collect(async () => {
      const rows = await Promise.all(
        templates.names().map(async (name) => ({
          name,
          counts: await queues.queue(name).getJobCounts('waiting', 'active', 'prioritized'),
          records: await records.snapshot(name),
          executors: (await records.executorIds(name)).length,
        })),
      );
      this.queueJobs.reset();
      this.poolSandboxes.reset();
      this.executors.reset();
      for (const { name, counts, records: sandboxes, executors } of rows) {
        this.queueJobs.set({ template: name, state: 'waiting' }, (counts.waiting ?? 0) + (counts.prioritized ?? 0));
        this.queueJobs.set({ template: name, state: 'active' }, counts.active ?? 0);
        const by = { idle_warm: 0, idle_hot: 0, busy: 0, booting: 0, reaping: 0 };
        for (const r of sandboxes) {
          if (r.state === 'idle') by[r.fn ? 'idle_hot' : 'idle_warm']++;
          else if (r.state === 'busy' && leases.holds(r.id)) by.idle_hot++;
          else by[r.state]++;
        }
        for (const [state, n] of Object.entries(by)) this.poolSandboxes.set({ template: name, state }, n);
        this.executors.set({ template: name }, executors);
      }
    });
  }

  private async countSessions(source: Pick<SessionStore, 'all'>): Promise<void> {
    const counts = new Map<string, { labels: Record<string, string>; n: number }>();
    for (const r of await source.all()) {
      if (r.state === 'lost') continue;
      const labels = this.tenants.add({ template: r.template }, r.tenant);
      const key = `${labels.template}\u0000${'tenant' in labels ? labels.tenant : ''}`;
      const c = counts.get(key);
      if (c) c.n++;
      else counts.set(key, { labels, n: 1 });
    }
    this.sessions.reset();
    for (const { labels, n } of counts.values()) this.sessions.set(labels, n);
  }

  record(r: ExecutionRecord): void {
    const labels = this.tenants.add({ template: r.template, start_type: r.startType ?? 'none' }, r.tenant);
    if (r.startType) this.starts.inc(labels);
    if (r.timings) this.latency.observe(labels, r.timings.totalMs / 1000);
    if (r.status !== 'succeeded') this.errors.inc(this.tenants.add({ type: r.error?.errorType ?? r.status }, r.tenant));
  }

  /**
   * A platform error or a throttled submission. Called while a request or a job is handled, so
   * the tenant is the one its log lines name (log.ts); outside both, the default tenant.
   */
  error(code: string): void {
    this.errors.inc(this.tenants.add({ type: code.includes('.') ? code : `Kiln.${code}` }, logContext()?.tenant));
  }

  render(): Promise<string> {
    return this.registry.render();
  }
}
