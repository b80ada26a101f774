/**
 * Polls `fn` every `everyMs` until it returns something other than undefined, and returns that;
 * throws naming `what` after `ms`. For conditions a test cannot be told about (a job finished).
 */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000, everyMs = 200): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
