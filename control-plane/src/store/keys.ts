/**
 * Every Redis key Kiln writes, in one place. All start with the deployment prefix so that
 * several deployments (and every test) can share one Redis without seeing each other.
 */
export class Keys {
  constructor(readonly prefix: string) {}

  sandbox(id: string): string {
    return `${this.prefix}:sbx:${id}`;
  }
  /** All sandbox ids of a template (SET). */
  sandboxes(template: string): string {
    return `${this.prefix}:sbxs:${template}`;
  }
  /** Idle sandboxes with no function loaded, per runner (LIST, most recently used first). */
  warm(template: string, runner: string): string {
    return `${this.prefix}:warm:${template}:${runner}`;
  }
  /** Idle instances of one function version (LIST, most recently used first). */
  hot(template: string, functionKey: string): string {
    return `${this.prefix}:hot:${template}:${functionKey}`;
  }
  executor(id: string): string {
    return `${this.prefix}:exe:${id}`;
  }
  /** Executors of a template scored by how many sandboxes they hold (ZSET). */
  executors(template: string): string {
    return `${this.prefix}:exes:${template}`;
  }
  /** Held by the one control-plane replica that runs a template's pool keeper this round. */
  keeperLock(template: string): string {
    return `${this.prefix}:keeper:${template}`;
  }
  /** BullMQ's own prefix for this deployment's queues. */
  get queuePrefix(): string {
    return `${this.prefix}:q`;
  }
}
