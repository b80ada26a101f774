import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startTestKiln } from '../support/kiln.js';

// One platform adapter that cannot be reached (a template naming a Kubernetes cluster that is
// down) must not keep a stopping control plane from stopping what it started itself.

const dir = mkdtempSync(join(tmpdir(), 'kiln-shutdown-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('shutdown', () => {
  it('stops the local executors even when another adapter fails', async () => {
    const kubeconfig = join(dir, 'kubeconfig');
    // Port 1 on loopback: nothing listens, every call is refused at once.
    writeFileSync(kubeconfig, 'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u, namespace: default}}]\ncurrent-context: x\n');
    const k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 1 } }, python: null, shell: null, provided: null }, env: { KILN_K8S_KUBECONFIG: kubeconfig, KILN_STOP_EXECUTORS_ON_EXIT: 'true' } });
    let pids: number[] = [];
    try {
      const made = await k.call('POST', '/api/v1/templates', { name: 'remote', image: 'x', runtimes: ['nodejs20.x'], platform: 'kubernetes', pool: { minIdle: 0 } });
      expect(made.status, JSON.stringify(made.body)).toBe(201);
      // The local template's executor is up (it runs the warm sandbox).
      expect((await k.call('POST', '/api/v1/executions', { code: 'exports.handler = async () => 1', language: 'nodejs', event: {} })).body.result).toBe(1);
      const states = join(k.dataDir, 'executors');
      pids = readdirSync(states)
        .filter((f) => f.endsWith('.json'))
        .map((f) => (JSON.parse(readFileSync(join(states, f), 'utf8')) as { pid: number }).pid);
      expect(pids.length).toBeGreaterThan(0);
    } finally {
      await k.stop(); // kiln.stop({ stopExecutors: true }), then the test's own cleanup
    }
    for (const pid of pids) expect(alive(pid), `executor ${pid} still runs`).toBe(false);
  });
});
