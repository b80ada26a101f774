import type { SandboxCgroup } from './cgroup.js';
import type { SandboxSpec } from './spec.js';

/** What a boot step knows about the sandbox it prepares. */
export interface BootContext {
  spec: SandboxSpec;
  /** Host pid of the bwrap process the executor started (outside the sandbox's namespaces). */
  bwrapPid: number;
  /** Host pid of the sandbox's first process, inside its namespaces; nothing has executed yet. */
  namespacePid: number;
  /** Hands the sandbox the cgroup that bounds it (the cgroup step), for memory readings and limits. */
  useCgroup(cgroup: SandboxCgroup): void;
}

/**
 * One piece of a sandbox's confinement that the executor sets up from outside (a cgroup, a
 * network, a devpts mount) while bwrap holds the sandbox before its first exec. Steps run side
 * by side, so none may depend on another's work; `release` undoes what `attach` made once the sandbox is gone, and must tolerate a
 * sandbox whose `attach` never ran or failed half-way.
 */
export interface BootStep {
  readonly name: string;
  attach(ctx: BootContext): Promise<void>;
  release(spec: SandboxSpec): Promise<void>;
}
