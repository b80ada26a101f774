import { isRedisDown } from '../errors.js';

/** How often a step cut off by a Redis outage is tried again. */
const RETRY_MS = 250;

/**
 * Runs `step`, trying it again while Redis is down, until `untilMs` (epoch ms): for the writes
 * that must follow a change already made in Redis (a booted sandbox's record after its
 * reservation, the release of a lease), which would otherwise leave a sandbox held for nobody
 * until a time limit frees it. Other errors, and an outage that lasts past `untilMs`, are thrown.
 */
export async function throughRedisOutage<T>(step: () => Promise<T>, untilMs: number): Promise<T> {
  for (;;) {
    try {
      return await step();
    } catch (err) {
      if (!isRedisDown(err) || Date.now() + RETRY_MS > untilMs) throw err;
      await new Promise((r) => setTimeout(r, RETRY_MS));
    }
  }
}
