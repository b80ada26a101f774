import { log } from '../log.js';
import type { SessionRecord } from './records.js';

/** After finding nothing to hibernate for a template, the store is not scanned again for this long. */
const NOTHING_PAUSED_MS = 1_000;

/**
 * Frees a sandbox slot of a template whose executors are full by hibernating its longest-paused
 * session (its /workspace to the blob store, its sandbox destroyed): a paused session holds a
 * slot and its memory but does no work, so a new session is placed before it. Called by the
 * scheduler's acquire loop (session creates and restores) once the pool has no room and no idle
 * function instance to evict. Frozen sessions only: a hibernated one holds nothing, a running
 * one is working.
 *
 * One hibernation per template at a time in this replica: concurrent waiters share it, and the
 * next waiter's round starts the next one. Any executor of the template will do, since each
 * sandbox of a template is interchangeable and the scheduler places on any executor with room.
 */
export class RoomMaker {
  private readonly inFlight = new Map<string, Promise<boolean>>();
  private readonly nothingUntil = new Map<string, number>();

  constructor(
    private readonly paused: () => Promise<SessionRecord[]>,
    private readonly hibernate: (id: string) => Promise<unknown>,
  ) {}

  /** True when a session was hibernated (a slot was given back); false when none could be. */
  makeRoom(template: string): Promise<boolean> {
    if ((this.nothingUntil.get(template) ?? 0) > Date.now()) return Promise.resolve(false);
    let p = this.inFlight.get(template);
    if (!p) {
      p = this.hibernateOldest(template).finally(() => this.inFlight.delete(template));
      this.inFlight.set(template, p);
    }
    return p;
  }

  private async hibernateOldest(template: string): Promise<boolean> {
    const candidates = (await this.paused()).filter((r) => r.template === template && r.state === 'paused').sort((a, b) => (a.pausedAt ?? 0) - (b.pausedAt ?? 0));
    for (const r of candidates) {
      try {
        await this.hibernate(r.id);
        log('info', 'hibernated the longest-paused session to make room for a new one', { sessionId: r.id, template, pausedAt: r.pausedAt });
        return true;
      } catch (err) {
        // Resumed, deleted or lost meanwhile, or its archive failed: the next one is tried.
        log('warn', 'could not hibernate a paused session to make room', { sessionId: r.id, template, error: String(err) });
      }
    }
    this.nothingUntil.set(template, Date.now() + NOTHING_PAUSED_MS);
    return false;
  }
}
