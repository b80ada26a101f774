import { readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * A handler that waits for the test: `await gate(token)` writes `<token>.ready` into the
 * sandbox's /workspace and returns once `<token>.go` appears there. Put GATE_JS at the top of the
 * handler's module. The test opens it with `openGate` (the workspace is a directory under Kiln's
 * data dir on the host), so "the handler is now at this point" needs no timing.
 */
export const GATE_JS = `
const gateFs = require('fs');
async function gate(token) {
  gateFs.writeFileSync('/workspace/' + token + '.ready', '');
  while (!gateFs.existsSync('/workspace/' + token + '.go')) await new Promise((r) => setTimeout(r, 20));
}`;

/** Where `<token>.ready` is under `dataDir` once a handler reached its gate (polls up to 20 s). */
export async function gateReached(dataDir: string, token: string): Promise<string> {
  const until = Date.now() + 20_000;
  for (;;) {
    const found = (readdirSync(dataDir, { recursive: true }) as string[]).find((p) => p.endsWith(`${token}.ready`));
    if (found) return join(dataDir, dirname(found));
    if (Date.now() > until) throw new Error(`no sandbox workspace holds ${token}.ready`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Lets the handler waiting at `token` go on (waits for it to reach the gate first). */
export async function openGate(dataDir: string, token: string): Promise<void> {
  writeFileSync(join(await gateReached(dataDir, token), `${token}.go`), '');
}
