import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { AgentPool } from '../agent/client.js';
import { log } from '../log.js';
import type { Platform } from '../platforms/platform.js';
import type { Keys } from '../store/keys.js';
import type { TemplateRegistry } from '../templates/registry.js';
import { templateRunners, type Template } from '../templates/template.js';
import { ExecutorHealth } from './health.js';
import type { SandboxRecords } from './records.js';
import { Reaper } from './reaper.js';
import type { ReplicaHeartbeat } from './replicas.js';
import type { Scheduler } from './scheduler.js';
import type { ExecutorLoss, PoolSignals } from './signals.js';

/**
 * How long an idle instance must have been unused before the keeper destroys it to give a full
 * template its `minIdle` warm sandboxes back. Long enough that instances a steady load keeps
 * reusing (within milliseconds) are not churned into cold starts.
 */
const WARM_EVICT_IDLE_MS = 2000;

/**
 * Keeps each template's pool in shape, one round per template per interval: health-checks
 * executors (lost ones are stopped, crashed sandboxes forgotten), reaps what outlived its idle
 * TTL or lifetime and leases whose owner vanished, then starts executors and boots `minIdle`
 * warm sandboxes per runner. Every replica runs a keeper; a short Redis lock per template makes
 * one of them act per round. A request that found no room (PoolSignals.wantCapacity) runs a
 * round at once; an executor dropped as lost (PoolSignals.executorLost) is stopped through the
 * runtime, which releases what it held on its host (local: its sandbox directories and uids).
 */
export class PoolKeeper {
  private timer: NodeJS.Timeout | undefined;
  private readonly running = new Set<string>();
  private readonly replica = randomUUID();
  readonly reaper: Reaper;
  readonly health: ExecutorHealth;

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly records: SandboxRecords,
    private readonly templates: TemplateRegistry,
    private readonly runtime: Platform,
    private readonly scheduler: Scheduler,
    private readonly agents: AgentPool,
    signals: PoolSignals,
    /** This replica's heartbeat; `close` ends it and asks it whether this replica is the last. */
    private readonly heartbeat: Pick<ReplicaHeartbeat, 'stop' | 'others'>,
    private readonly intervalMs = 1000,
  ) {
    this.reaper = new Reaper(records, agents, runtime, scheduler);
    this.health = new ExecutorHealth(records, agents, scheduler, this.reaper);
    signals.onDemand((t) => this.noteDemand(t));
    signals.onExecutorLost((loss) => this.stopLost(loss));
  }

  start(): void {
    this.timer = setInterval(() => {
      for (const t of this.templates.all()) this.wake(t);
    }, this.intervalMs);
  }

  /** Stops the timer and waits for the rounds and executor stops under way here. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.stopped = true;
    while (this.running.size > 0 || this.stopping.size > 0) await Promise.allSettled([...this.stopping.values(), new Promise((r) => setTimeout(r, 20))]);
  }

  /**
   * Stops the keeper and ends this replica's heartbeat. With `stopExecutors`, the deployment's
   * executors are stopped and their records dropped, but only by the last replica: executors
   * are shared, and while another replica is alive they carry its calls (it adopts nothing; it
   * simply keeps using them, and its keeper retires the idle ones). The last replica stops every
   * executor of the deployment, including ones started by replicas that exited before it, so
   * nothing is left running unowned. Returns what it did, for the log and for tests.
   */
  async close(opts: { stopExecutors: boolean }): Promise<'left-running' | 'stopped' | 'others-alive'> {
    await this.stop();
    // Gone from the others' view first, so two replicas stopping together cannot both see the other.
    await this.heartbeat.stop();
    if (!opts.stopExecutors) return 'left-running';
    const others = await this.heartbeat.others();
    if (others.length > 0) {
      log('info', 'other control-plane replicas are alive; leaving the executors running for them', { replicas: others.length });
      return 'others-alive';
    }
    await this.stopAllExecutors();
    return 'stopped';
  }

  /** Stops every executor of the deployment (records and runtime alike) and drops their records. */
  private async stopAllExecutors(): Promise<void> {
    const byTemplate = new Map<string, string>();
    for (const t of this.templates.all()) for (const id of await this.records.executorIds(t.name)) byTemplate.set(id, t.name);
    for (const h of await this.runtime.list()) byTemplate.set(h.id, h.template);
    for (const [id, template] of byTemplate) {
      await this.runtime.stop(id).catch((err: unknown) => log('warn', 'could not stop executor', { executorId: id, error: String(err) }));
      await this.records.dropExecutor(template, id);
      this.agents.drop(id);
    }
    // Records of sandboxes whose executor had no record (a half-finished start or loss).
    for (const t of this.templates.all()) for (const r of await this.records.snapshot(t.name)) await this.records.forget(t.name, r.id);
  }

  private stopped = false;
  /** Lost executors being stopped here, by id. */
  private readonly stopping = new Map<string, Promise<void>>();

  /**
   * Stops an executor dropped as lost. Its records went already (SandboxRecords.dropExecutor);
   * `stop` of a dead executor releases what it left on its host, which nothing else would.
   */
  private stopLost(loss: ExecutorLoss): void {
    if (this.stopping.has(loss.executorId)) return;
    const done = this.runtime
      .stop(loss.executorId)
      .catch((err: unknown) => log('warn', 'could not stop a lost executor', { executorId: loss.executorId, error: String(err) }))
      .finally(() => {
        this.agents.drop(loss.executorId);
        this.stopping.delete(loss.executorId);
      });
    this.stopping.set(loss.executorId, done);
  }

  /** Runs one round for a template unless one is already running here. */
  wake(template: Template): void {
    if (this.stopped || this.running.has(template.name)) return;
    this.running.add(template.name);
    this.round(template)
      .catch((err: unknown) => log('warn', 'pool keeper round failed', { template: template.name, error: String(err) }))
      .finally(() => this.running.delete(template.name));
  }

  /** One round; resolves when the pool has what it needs (used at start-up and by tests). */
  async round(template: Template): Promise<void> {
    const lock = this.keys.keeperLock(template.name);
    if ((await this.redis.set(lock, this.replica, 'PX', 30_000, 'NX')) !== 'OK') return;
    try {
      await this.health.check(template);
      await this.reaper.reap(template);
      await this.ensureExecutors(template);
      await this.ensureWarm(template);
    } finally {
      // Only release our own lock (a slow round may have outlived it).
      if ((await this.redis.get(lock)) === this.replica) await this.redis.del(lock);
    }
  }

  private async ensureExecutors(template: Template): Promise<void> {
    const load = await this.records.executorLoad(template.name);
    const full = load.every((e) => e.sandboxes >= template.pool.sandboxesPerExecutor);
    const capacity = load.length * template.pool.sandboxesPerExecutor;
    const wanted = load.length === 0 || (full && capacity < template.pool.maxSandboxes);
    const needed = template.pool.minIdle > 0 || load.length > 0 || this.demand.has(template.name);
    if (!wanted || !needed) return;
    this.demand.delete(template.name);
    const id = `exe-${template.name}-${randomUUID().slice(0, 8)}`;
    log('info', 'starting executor', { template: template.name, executorId: id, runtime: this.runtime.kind });
    const handle = await this.runtime.start(template, id);
    await this.agents.get(handle).health(10_000);
    await this.records.addExecutor(handle);
  }

  private readonly demand = new Set<string>();

  /** Records that a request wanted a sandbox of this template and found no executor. */
  noteDemand(template: Template): void {
    this.demand.add(template.name);
    this.wake(template);
  }

  private async ensureWarm(template: Template): Promise<void> {
    for (const runner of templateRunners(template)) {
      const missing = template.pool.minIdle - (await this.scheduler.warmCount(template.name, runner));
      const boots: Array<Promise<void>> = [];
      for (let i = 0; i < missing; i++) {
        boots.push(
          (async () => {
            const owner = `keeper:${this.replica}`;
            // Ahead of time: no request waits for it (see Scheduler.createSandbox).
            let lease = await this.scheduler.createSandbox(template, runner, owner, undefined, true);
            // A template full of idle instances would keep no warm sandbox until they reach their
            // idle TTL: one idle for a while (not one the load is about to reuse) makes room.
            if (!lease && (await this.scheduler.evictIdle(template, WARM_EVICT_IDLE_MS))) lease = await this.scheduler.createSandbox(template, runner, owner, undefined, true);
            if (lease) await this.scheduler.release(lease, '');
          })(),
        );
      }
      await Promise.all(boots);
    }
  }

  /**
   * Tears down a deleted template's pool: stops its executors and drops its records. Safe to
   * run on several replicas at once (each step is idempotent).
   */
  async retire(name: string): Promise<void> {
    for (const id of await this.records.executorIds(name)) {
      await this.runtime.stop(id).catch((err: unknown) => log('warn', 'could not stop executor', { executorId: id, error: String(err) }));
      await this.records.removeExecutor({ id, template: name });
      this.agents.drop(id);
    }
    await this.records.purge(name);
    await this.redis.del(this.keys.keeperLock(name));
    this.demand.delete(name);
  }
}
