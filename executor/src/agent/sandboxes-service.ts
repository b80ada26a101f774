import type { SandboxesServer, SandboxInfo, SandboxUsage } from '@kiln/proto/executor/sandboxes';
import type { ExecutorConfig } from '../config.js';
import { parsePolicyJson } from '../egress/policy.js';
import { InvalidArgumentError } from '../errors.js';
import type { ContextTable } from '../interpreter/contexts.js';
import { readCgroupUsage } from '../sandbox/cgroup-usage.js';
import type { SandboxManager } from '../sandbox/manager.js';
import type { Sandbox } from '../sandbox/sandbox.js';
import type { Rpc } from './rpc.js';

/** How the executor bounds its sandboxes (Health reports it): see sandbox/cgroup.ts. */
export interface LimitsReport {
  limits: 'cgroup-v1' | 'cgroup-v2' | 'none';
  detail: string;
}

function info(s: Sandbox): SandboxInfo {
  return { sandboxId: s.id, runner: s.runner, pid: s.pid, bootMs: s.bootMs, functionKey: s.functionKey, createdAtMs: s.createdAt };
}

/**
 * What a sandbox's cgroup has used, and how long the step took: the one usage reading, for
 * pause/resume's answers, `GET …/usage` and `GET …/metrics` alike. Read from the cgroup's files,
 * so it works while frozen; an executor without cgroups answers `source: "none"` and no figures.
 */
async function usageOf(s: Sandbox, limits: LimitsReport, tookMs = 0): Promise<SandboxUsage> {
  const sampledAtMs = Date.now();
  const base = { sandboxId: s.id, paused: s.paused, tookMs, sampledAtMs };
  const cgroup = s.cgroup;
  if (!cgroup || limits.limits === 'none') return { ...base, source: 'none', processes: 0 };
  const u = await readCgroupUsage(cgroup, limits.limits === 'cgroup-v2' ? 'v2' : 'v1');
  return { ...base, ...u, source: limits.limits, processes: (await cgroup.processes()).length };
}

/** Runs `step` and answers the sandbox's usage after it, with the step's duration. */
async function timed(s: Sandbox, limits: LimitsReport, step: () => Promise<void>): Promise<SandboxUsage> {
  const t0 = performance.now();
  await step();
  return usageOf(s, limits, performance.now() - t0);
}

/** The Sandboxes service: the executor's capacity, and creating, listing and destroying sandboxes. */
export function sandboxesService(rpc: Rpc, config: ExecutorConfig, sandboxes: SandboxManager, limits: LimitsReport, contexts?: ContextTable): SandboxesServer {
  const started = Date.now();
  return {
    health: rpc.unary(() => ({
      executorId: config.executorId,
      template: config.template,
      sandboxes: sandboxes.size,
      maxSandboxes: config.maxSandboxes,
      runners: config.runners,
      uptimeMs: Date.now() - started,
      limits: limits.limits,
      limitsDetail: limits.detail,
      workspaceFs: sandboxes.workspaceFs.kind,
      workspaceFsDetail: sandboxes.workspaceFs.detail,
    })),
    create: rpc.unary(async (r) => {
      const sizes = {
        memoryMB: r.resources?.memoryMb || 512,
        cpus: r.resources?.cpu || 1,
        diskMB: r.resources?.diskMb || 512,
        maxProcesses: r.resources?.maxProcesses || 256,
        maxOpenFiles: r.resources?.maxOpenFiles || 1024,
      };
      let egress;
      try {
        egress = r.egressPolicyJson ? parsePolicyJson(r.egressPolicyJson) : undefined;
      } catch (err) {
        throw new InvalidArgumentError((err as Error).message, { sandboxId: r.sandboxId });
      }
      const sandbox = await sandboxes.create(r.sandboxId, r.runner, sizes, r.allowNetwork && !egress, r.allowCidrs, r.aheadOfTime, egress, r.volumes.map((v) => ({ tenantKey: v.tenantKey, volumeId: v.volumeId, sizeMB: v.sizeMb, path: v.path, readOnly: v.readOnly, synced: v.synced })));
      for (const language of r.prestartContexts) contexts?.prestart(sandbox, language);
      return info(sandbox);
    }),
    destroy: rpc.unary(async (r) => ({ existed: await sandboxes.destroy(r.sandboxId) })),
    list: rpc.unary(() => ({ sandboxes: sandboxes.list().filter((s) => s.state !== 'dead').map(info) })),
    pause: rpc.unary((r) => {
      const s = sandboxes.get(r.sandboxId);
      return timed(s, limits, () => s.pause());
    }),
    resume: rpc.unary((r) => {
      const s = sandboxes.get(r.sandboxId);
      return timed(s, limits, () => s.resume());
    }),
    usage: rpc.unary((r) => usageOf(sandboxes.get(r.sandboxId), limits)),
  };
}
