import { SandboxMount } from './sandbox-mount.js';

/**
 * Resizing a running sandbox's /tmp (a tmpfs bwrap mounted, bwrap-args.ts) to a function's
 * EphemeralStorage.Size when the function is loaded. A warm sandbox boots before anyone knows
 * which function it will run, so its /tmp has the template's size; the function's size is set at
 * load, once, before any of its code runs (a sandbox never runs a second function).
 *
 * Done as the devpts mount is (sandbox-mount.ts): a child of the host helper joins the sandbox's
 * user and mount namespaces and remounts /tmp there with the new size. The remount keeps nosuid
 * and nodev (MS_REMOUNT without them would clear them) and changes nothing else; a tmpfs cannot be shrunk below what it holds, which a fresh
 * sandbox never does. `PPid` equal to bwrap's pid guards against a recycled pid.
 *
 * One file stays bounded by the sandbox's file size limit (RLIMIT_FSIZE, the template's disk size,
 * bwrap-args.ts): raising a hard limit after boot takes CAP_SYS_RESOURCE, which executors in
 * containers lack, and the limit is what bounds one file in a workspace without a hard size. /tmp
 * as a whole holds EphemeralStorage.Size; a single file past the template's disk size is EFBIG.
 */
const TMP = new SandboxMount('tmp_size', { source: 'tmpfs', target: '/tmp', type: 'tmpfs', waitForBoot: false });

const MS_NOSUID = 0x2;
const MS_NODEV = 0x4;
const MS_REMOUNT = 0x20;

export class TmpResizeError extends Error {
  constructor(
    readonly sandboxId: string,
    message: string,
  ) {
    super(`sizing /tmp of sandbox ${sandboxId} failed: ${message}`);
    this.name = 'TmpResizeError';
  }
}

/** Sets the size of a running sandbox's /tmp to `sizeMB`. */
export async function resizeTmp(sandbox: { id: string; pid: number; namespacePid: number }, sizeMB: number): Promise<void> {
  if (!Number.isInteger(sizeMB) || sizeMB < 1) throw new TmpResizeError(sandbox.id, `size must be a positive number of MB; got ${sizeMB}`);
  try {
    await TMP.mount(sandbox.namespacePid, sandbox.pid, `size=${sizeMB}m`, MS_REMOUNT | MS_NOSUID | MS_NODEV);
  } catch (err) {
    throw new TmpResizeError(sandbox.id, (err as Error).message);
  }
}
