import type { UsageServer } from '@kiln/proto/executor/usage';
import { readCgroupUsage } from '../sandbox/cgroup-usage.js';
import type { SandboxManager } from '../sandbox/manager.js';
import type { Rpc } from './rpc.js';
import type { LimitsReport } from './sandboxes-service.js';

/**
 * The Usage service: one sandbox's CPU time, memory and tasks from its cgroup, for the
 * control plane's `GET /api/v1/sessions/{id}/metrics`. An unknown sandbox is SANDBOX_NOT_FOUND
 * (manager.get); an executor without cgroups answers `source: "none"` and no figures.
 */
export function usageService(rpc: Rpc, sandboxes: SandboxManager, limits: LimitsReport): UsageServer {
  return {
    sample: rpc.unary(async (r) => {
      const sandbox = sandboxes.get(r.sandboxId);
      const cgroup = sandbox.cgroup;
      const sampledAtMs = Date.now();
      if (!cgroup || limits.limits === 'none') return { source: 'none', sampledAtMs };
      const u = await readCgroupUsage(cgroup, limits.limits === 'cgroup-v2' ? 'v2' : 'v1');
      return { source: limits.limits, sampledAtMs, ...u };
    }),
  };
}
