import { log } from '../log.js';
import type { Template } from '../templates/template.js';

/** An executor the scheduler dropped because it stopped answering (SIGKILLed, crashed, unreachable). */
export interface ExecutorLoss {
  template: string;
  executorId: string;
  /** Why, in a few words, for logs and for the sessions it held (`executor exited`). */
  reason: string;
  /** The sandbox records that went with it. */
  sandboxIds: string[];
}

type Listener<T> = (event: T) => void | Promise<void>;

/**
 * What the scheduler notices and others act on, created before any of them and passed to each
 * constructor: the scheduler raises signals, the keeper, the lease cache and the session service
 * listen. It replaces callbacks that closed over objects made later (the scheduler ↔ keeper
 * cycle). Listeners run in the order they were added, synchronously up to their first await; a
 * listener that fails is logged here and never fails the one that raised the signal.
 */
export class PoolSignals {
  private readonly demand: Array<Listener<Template>> = [];
  private readonly lost: Array<Listener<ExecutorLoss>> = [];

  /** A request found no room on a template: parked leases go back, and the keeper adds capacity. */
  onDemand(fn: Listener<Template>): void {
    this.demand.push(fn);
  }

  /** An executor was dropped from scheduling: stop it, release what it held, mark its sessions lost. */
  onExecutorLost(fn: Listener<ExecutorLoss>): void {
    this.lost.push(fn);
  }

  wantCapacity(template: Template): void {
    this.emit('demand', this.demand, template);
  }

  executorLost(loss: ExecutorLoss): void {
    this.emit('executor lost', this.lost, loss);
  }

  private emit<T>(what: string, listeners: Array<Listener<T>>, event: T): void {
    for (const fn of listeners) {
      try {
        const p = fn(event);
        if (p) p.catch((err: unknown) => log('warn', `a ${what} listener failed`, { error: String(err) }));
      } catch (err) {
        log('warn', `a ${what} listener failed`, { error: String(err) });
      }
    }
  }
}
