/**
 * MOUNT program 100005 version 3 (RFC 1813 §5): turns "/<session-id>[/dir…]"
 * into a root file handle, and lists exports for clients (libnfs) that ask.
 */
import { isAllowed } from './allow.js';
import { MountStatus, toMountStatus } from './errors.js';
import type { ExportRegistry } from './exports.js';
import { AUTH_UNIX } from './rpc.js';
import { XdrError, type XdrReader, XdrWriter } from './xdr.js';

export const MOUNT_PROGRAM = 100005;
export const MOUNT_V3 = 3;
/** MNTPATHLEN */
const MNTPATHLEN = 1024;

/** What MOUNT procedures need from the connection. */
export interface MountContext {
  registry: ExportRegistry;
  client: string | undefined;
}

class MountError extends Error {
  constructor(readonly status: number) {
    super(`mountstat3 ${status}`);
  }
}

/** Resolves a mount path to a directory key of an export, enforcing the allow-list. */
async function mnt(ctx: MountContext, dirpath: string): Promise<XdrWriter> {
  const parts = dirpath.split('/').filter((p) => p !== '' && p !== '.');
  // ".." is refused outright rather than resolved: a mount path never climbs.
  if (parts.includes('..')) throw new MountError(MountStatus.ACCES);
  const [id, ...rest] = parts;
  if (!id) throw new MountError(MountStatus.NOENT);
  const efs = await ctx.registry.get(id);
  if (!efs) throw new MountError(MountStatus.NOENT);
  if (!isAllowed(efs.exp.allow, ctx.client)) throw new MountError(MountStatus.ACCES);
  let key = efs.rootKey;
  for (const name of rest) {
    const found = await efs.lookup(key, name).catch((e: unknown) => {
      throw new MountError(toMountStatus(e));
    });
    if (!found.st.isDirectory()) throw new MountError(MountStatus.NOTDIR);
    key = found.key;
  }
  return new XdrWriter().u32(MountStatus.OK).opaque(ctx.registry.handle(efs, key)).u32(1).u32(AUTH_UNIX);
}

/**
 * Runs MOUNT v3 procedure `proc`; undefined when there is no such procedure.
 * Throws {@link XdrError} on undecodable arguments.
 */
export async function dispatchMount(ctx: MountContext, proc: number, args: XdrReader): Promise<XdrWriter | undefined> {
  switch (proc) {
    case 0: // NULL
    case 4: // UMNTALL: we keep no mount table, so there is nothing to forget
      return new XdrWriter(0);
    case 1: {
      const path = args.string(MNTPATHLEN);
      try {
        return await mnt(ctx, path);
      } catch (e) {
        if (e instanceof XdrError) throw e;
        return new XdrWriter(4).u32(e instanceof MountError ? e.status : toMountStatus(e));
      }
    }
    case 2: // DUMP: empty mount list (not tracked, and would leak other clients' mounts)
      return new XdrWriter(4).bool(false);
    case 3: // UMNT
      args.string(MNTPATHLEN);
      return new XdrWriter(0);
    case 5:
      // EXPORT: always the empty list. Export paths are session ids, and a session's id is what a
      // client must already know to mount it; listing them would hand every session on this
      // executor to anyone who can reach its port.
      return new XdrWriter(4).bool(false);
    default:
      return undefined;
  }
}
