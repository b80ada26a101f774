import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '@kiln/proto/executor/errors';
import { InvokeStatus } from '@kiln/proto/executor/invoke';
import { Agent, AgentPool } from '@kiln/control-plane/agent/client';
import type { ExecutorHandle, Platform } from '@kiln/control-plane/platforms/platform';
import { templateSchema, type Template } from '@kiln/control-plane/templates';

const NODEJS_TEMPLATE = fileURLToPath(new URL('../../../templates/nodejs.json', import.meta.url));

/**
 * The repo's nodejs template for a conformance run. For a container platform it names that
 * executor kind and has small limits: the conformance executor hosts a couple of sandboxes at most.
 */
export function conformanceTemplate(executor?: 'docker' | 'kubernetes'): Template {
  const template = templateSchema.parse({ ...JSON.parse(readFileSync(NODEJS_TEMPLATE, 'utf8')), ...(executor ? { executor } : {}) });
  if (executor) template.pool.sandboxesPerExecutor = 4;
  return template;
}

/** What a runtime's test file hands the conformance suite. */
export interface ConformanceTarget {
  /** A template with the `nodejs20.x` runtime that this adapter can start. */
  template: Template;
  /**
   * A fresh adapter instance for one deployment of its own (its label); the suite tests the first
   * one it makes, and makes more as a restarted control plane would. With `deployment`, one for
   * another deployment label (it must not see the first one's executors).
   */
  makePlatform(opts?: { deployment?: string }): Platform;
  /** Removes whatever the setup made (services, tmp dirs); executors are stopped by the suite. */
  cleanup(): Promise<void>;
}

const HANDLER = `exports.handler = async (event) => ({ echoed: event.value, node: process.version });\n`;

/** Boots a nodejs sandbox and invokes a trivial handler in it, as the scheduler and runner do. */
async function invokeTrivial(agents: AgentPool, handle: ExecutorHandle, template: Template): Promise<unknown> {
  const agent = agents.get(handle);
  const sandboxId = `sbx-conf-${randomBytes(4).toString('hex')}`;
  await agent.createSandbox({
    sandboxId,
    runner: 'nodejs',
    resources: {
      memoryMb: template.resources.memoryMB,
      diskMb: template.resources.diskMB,
      maxProcesses: template.resources.maxProcesses,
      maxOpenFiles: template.resources.maxOpenFiles,
      cpu: template.resources.cpu,
    },
    allowNetwork: false,
    allowCidrs: [],
    egressPolicyJson: '',
    aheadOfTime: false,
  });
  const res = await agent.invoke(
    {
      sandboxId,
      requestId: `req-${sandboxId}`,
      functionKey: 'conformance:1',
      function: {
        functionKey: 'conformance:1',
        name: 'conformance',
        version: '1',
        runner: 'nodejs',
        handler: 'index.handler',
        files: [{ path: 'index.js', content: Buffer.from(HANDLER), mode: 0o644 }],
        env: {},
        memoryMb: 128,
        tenant: 'default',
        region: '',
        ephemeralStorageMb: 0,
      },
      payload: Buffer.from(JSON.stringify({ value: 42 })),
      timeoutMs: 10_000,
      clientContext: '',
      invokedFunctionArn: '',
    },
    15_000,
  );
  expect(res.status, res.error?.errorMessage).toBe(InvokeStatus.INVOKE_STATUS_SUCCEEDED);
  await agent.destroySandbox(sandboxId);
  return JSON.parse(Buffer.from(res.payload).toString('utf8'));
}

/**
 * The contract every `Platform` adapter meets (DESIGN.md, "Runtimes"): start an executor whose
 * agent answers over gRPC with its token, list it by this deployment's labels only, stop it
 * (unknown ids are a no-op), and let a fresh adapter — a restarted control plane — find and
 * reach what an earlier one started. Call once per adapter, from its own test file.
 */
export function runtimeConformance(name: string, setup: () => Promise<ConformanceTarget>): void {
  describe(`runtime conformance: ${name}`, () => {
    let target: ConformanceTarget & { runtime: Platform };
    let handle: ExecutorHandle;
    const agents = new AgentPool();
    const extra: Platform[] = [];
    const executorId = `ex-conf-${randomBytes(4).toString('hex')}`;

    beforeAll(async () => {
      const t = await setup();
      target = { ...t, runtime: t.makePlatform() };
      handle = await target.runtime.start(target.template, executorId);
    }, 300_000);

    afterAll(async () => {
      agents.closeAll();
      if (target) {
        // Whatever a failed case left running goes too; stop is a no-op for unknown ids.
        await target.runtime.stop(executorId);
        for (const r of extra) await r.close();
        await target.runtime.close();
        await target.cleanup();
      }
    }, 120_000);

    it('start resolves with a handle whose agent answers Health with the token', async () => {
      expect(handle).toMatchObject({
        id: executorId,
        template: target.template.name,
        labels: { template: target.template.name, executor: executorId },
      });
      expect(handle.address).toMatch(/^[^:]+:\d+$/);
      expect(handle.token.length).toBeGreaterThanOrEqual(16);
      expect(handle.host).not.toBe('');
      const health = await agents.get(handle).health(5000);
      expect(health).toMatchObject({ executorId, template: target.template.name });
      expect(health.runners).toContain('nodejs');
    });

    it('the agent rejects a wrong token', async () => {
      const wrong = new Agent({ ...handle, token: 'not-the-token' });
      try {
        const err = await wrong.health(5000).then(
          () => undefined,
          (e: unknown) => e,
        );
        // Rebuilt from the executor's ERROR_CODE_UNAUTHENTICATED (control-plane agent/errors.ts).
        expect(err).toMatchObject({ code: 'ExecutorUnauthenticated', executorCode: ErrorCode.ERROR_CODE_UNAUTHENTICATED });
      } finally {
        wrong.close();
      }
    });

    it('invokes a nodejs handler in a sandbox of the executor', async () => {
      const result = await invokeTrivial(agents, handle, target.template);
      expect(result).toMatchObject({ echoed: 42 });
      expect((result as { node: string }).node).toMatch(/^v20\./);
    });

    it('list() finds the executor by its labels; another deployment does not see it', async () => {
      const mine = (await target.runtime.list()).filter((h) => h.id === executorId);
      expect(mine).toHaveLength(1);
      expect(mine[0]).toMatchObject({ id: executorId, template: target.template.name, address: handle.address, labels: handle.labels });
      const other = target.makePlatform({ deployment: `other-${randomBytes(3).toString('hex')}` });
      extra.push(other);
      expect((await other.list()).map((h) => h.id)).not.toContain(executorId);
      // Stopping through another deployment's adapter must not touch this one's executors.
      await other.stop(executorId).catch((err: unknown) => expect.fail(`stop of a foreign id must be a no-op: ${String(err)}`));
      expect((await target.runtime.list()).map((h) => h.id)).toContain(executorId);
    });

    it('a fresh adapter (after a control-plane restart) lists and reaches the executor', async () => {
      const fresh = target.makePlatform();
      extra.push(fresh);
      const found = (await fresh.list()).find((h) => h.id === executorId);
      expect(found, 'the restarted adapter must find the executor by label').toBeDefined();
      const adopted = found as ExecutorHandle;
      expect(adopted.token).toBe(handle.token);
      const recovered = new AgentPool();
      try {
        await recovered.get(adopted).health(5000);
        expect(await invokeTrivial(recovered, adopted, target.template)).toMatchObject({ echoed: 42 });
      } finally {
        recovered.closeAll();
      }
    });

    it('stop of an unknown id is a no-op', async () => {
      await target.runtime.stop(`ex-unknown-${randomBytes(4).toString('hex')}`);
      await target.runtime.stop('../../etc/passwd');
      expect((await target.runtime.list()).map((h) => h.id)).toContain(executorId);
    });

    it('stop() removes the executor: list() no longer shows it and its agent is gone', async () => {
      await target.runtime.stop(executorId);
      expect((await target.runtime.list()).map((h) => h.id)).not.toContain(executorId);
      agents.drop(executorId);
      const err = await agents
        .get(handle)
        .health(2000)
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(err, 'the agent of a stopped executor must not answer').toBeDefined();
      // A second stop of the same id is also a no-op.
      await target.runtime.stop(executorId);
    });
  });
}
