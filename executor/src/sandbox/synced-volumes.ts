import { InvalidArgumentError } from '../errors.js';
import { SandboxMount } from './sandbox-mount.js';
import type { SandboxSpec } from './spec.js';
import type { VolumeBind } from './volumes.js';

/**
 * Synced volumes on the executor's side (the control plane's side: control-plane/src/volumes/
 * synced.ts). The volume is a tmpfs of its size in the sandbox (bwrap-args.ts), so the kernel
 * refuses writes past `sizeMB` with ENOSPC and nothing of it lives on this host once the sandbox
 * goes. The control plane fills it once, right after boot and before anyone holds the session,
 * with Files.TarUpload at the volume's path (tar inside the sandbox as its user), and packs it
 * with Files.TarDownload at that path. A read-only volume is then remounted read-only in the
 * sandbox's mount namespace (as /tmp is resized: sandbox-mount.ts): the sandbox's processes have
 * no CAP_SYS_ADMIN there, and a user namespace they nest gets the mount locked read-only. A
 * sealed volume takes no second fill: a later TarUpload at its path is refused.
 */
const SEAL = new SandboxMount('volume_seal', { source: 'none', target: '/mnt', type: 'none', waitForBoot: false });

const MS_RDONLY = 0x1;
const MS_NOSUID = 0x2;
const MS_NODEV = 0x4;
const MS_REMOUNT = 0x20;
const MS_BIND = 0x1000;

/** Sandboxes' sealed volume paths (a sandbox object goes with its sandbox). */
const sealed = new WeakMap<object, Set<string>>();

/** The synced volume mounted at exactly `path` in this sandbox, or undefined. */
export function syncedVolumeAt(spec: SandboxSpec, path: string): VolumeBind | undefined {
  return spec.volumes?.find((v) => v.syncedMB !== undefined && v.path === path);
}

/** Refuses a fill of a volume that was sealed read-only already. */
export function checkFillable(sandbox: object, path: string): void {
  if (sealed.get(sandbox)?.has(path)) throw new InvalidArgumentError(`the read-only volume at ${path} was filled at the session's create and takes no writes`, { path });
}

/** After the fill of a read-only synced volume: remounts it read-only in the sandbox. */
export async function sealSyncedVolume(sandbox: { pid: number; namespacePid: number }, path: string): Promise<void> {
  // The remount keeps nosuid and nodev (bwrap's tmpfs flags); MS_BIND makes it this mount's flag only.
  await SEAL.mount(sandbox.namespacePid, sandbox.pid, '', MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, path);
  let set = sealed.get(sandbox);
  if (!set) sealed.set(sandbox, (set = new Set()));
  set.add(path);
}
