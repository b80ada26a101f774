import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { AgentPool } from '../agent/client.js';
import { log } from '../log.js';
import type { Runtime } from '../runtimes/runtime.js';
import type { ExecutorStore } from '../store/executors.js';
import type { Keys } from '../store/keys.js';
import type { TemplateRegistry } from '../templates/registry.js';
import { templateRunners, type Template } from '../templates/template.js';
import { ExecutorHealth } from './health.js';
import { readSandboxes } from './records.js';
import { Reaper } from './reaper.js';
import type { Scheduler } from './scheduler.js';

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
 * one of them act per round. `wake` runs a round at once (a request found no room).
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
    private readonly templates: TemplateRegistry,
    private readonly runtime: Runtime,
    private readonly executors: ExecutorStore,
    private readonly scheduler: Scheduler,
    private readonly agents: AgentPool,
    private readonly intervalMs = 1000,
  ) {
    this.reaper = new Reaper(redis, keys, executors, agents, runtime, scheduler);
    this.health = new ExecutorHealth(redis, keys, executors, agents, runtime, scheduler, this.reaper);
  }

  start(): void {
    this.timer = setInterval(() => {
      for (const t of this.templates.all()) this.wake(t);
    }, this.intervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Runs one round for a template unless one is already running here. */
  wake(template: Template): void {
    if (this.running.has(template.name)) return;
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
    const load = await this.executors.load(template.name);
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
    await this.executors.add(handle);
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
            let lease = await this.scheduler.createSandbox(template, runner, owner);
            // A template full of idle instances would keep no warm sandbox until they reach their
            // idle TTL: one idle for a while (not one the load is about to reuse) makes room.
            if (!lease && (await this.scheduler.evictIdle(template, WARM_EVICT_IDLE_MS))) lease = await this.scheduler.createSandbox(template, runner, owner);
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
    for (const id of await this.executors.listIds(name)) {
      await this.runtime.stop(id).catch((err: unknown) => log('warn', 'could not stop executor', { executorId: id, error: String(err) }));
      await this.executors.remove({ id, template: name });
      this.agents.drop(id);
    }
    for (const r of await readSandboxes(this.redis, this.keys, name)) {
      await this.redis.del(this.keys.sandbox(r.id), r.fn ? this.keys.hot(name, r.fn) : this.keys.warm(name, r.runner));
    }
    await this.redis.del(this.keys.sandboxes(name), this.keys.executors(name), this.keys.executorFailures(name), this.keys.keeperLock(name));
    this.demand.delete(name);
  }
}
