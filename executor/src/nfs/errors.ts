/**
 * NFSv3 status codes (RFC 1813 §2.6) and the mapping from Node/libuv errno
 * codes. Handlers throw {@link NfsError} or plain fs errors; the dispatcher
 * turns both into an nfsstat3 with {@link toNfsStatus}.
 */

/** nfsstat3 values. */
export const Nfs3Status = {
  OK: 0,
  PERM: 1,
  NOENT: 2,
  IO: 5,
  NXIO: 6,
  ACCES: 13,
  EXIST: 17,
  XDEV: 18,
  NODEV: 19,
  NOTDIR: 20,
  ISDIR: 21,
  INVAL: 22,
  FBIG: 27,
  NOSPC: 28,
  ROFS: 30,
  MLINK: 31,
  NAMETOOLONG: 63,
  NOTEMPTY: 66,
  DQUOT: 69,
  STALE: 70,
  BADHANDLE: 10001,
  NOT_SYNC: 10002,
  BAD_COOKIE: 10003,
  NOTSUPP: 10004,
  TOOSMALL: 10005,
  SERVERFAULT: 10006,
  BADTYPE: 10007,
  JUKEBOX: 10008,
} as const;

/** A protocol-level failure carrying the nfsstat3 to return. */
export class NfsError extends Error {
  override name = 'NfsError';
  constructor(
    readonly status: number,
    message?: string,
  ) {
    super(message ?? `nfsstat3 ${status}`);
  }
}

const ERRNO_TO_NFS: Record<string, number> = {
  EPERM: Nfs3Status.PERM,
  ENOENT: Nfs3Status.NOENT,
  EIO: Nfs3Status.IO,
  ENXIO: Nfs3Status.NXIO,
  EACCES: Nfs3Status.ACCES,
  EEXIST: Nfs3Status.EXIST,
  EXDEV: Nfs3Status.XDEV,
  ENODEV: Nfs3Status.NODEV,
  ENOTDIR: Nfs3Status.NOTDIR,
  EISDIR: Nfs3Status.ISDIR,
  EINVAL: Nfs3Status.INVAL,
  EFBIG: Nfs3Status.FBIG,
  ENOSPC: Nfs3Status.NOSPC,
  EROFS: Nfs3Status.ROFS,
  EMLINK: Nfs3Status.MLINK,
  ENAMETOOLONG: Nfs3Status.NAMETOOLONG,
  ENOTEMPTY: Nfs3Status.NOTEMPTY,
  EDQUOT: Nfs3Status.DQUOT,
  ESTALE: Nfs3Status.STALE,
  // A name we refused to follow (O_NOFOLLOW on a symlink) is not what the handle named.
  ELOOP: Nfs3Status.STALE,
  ENOTSUP: Nfs3Status.NOTSUPP,
  EOPNOTSUPP: Nfs3Status.NOTSUPP,
  EAGAIN: Nfs3Status.JUKEBOX,
  EBUSY: Nfs3Status.JUKEBOX,
  ETXTBSY: Nfs3Status.JUKEBOX,
  // Out of descriptors is transient: JUKEBOX makes clients retry later.
  EMFILE: Nfs3Status.JUKEBOX,
  ENFILE: Nfs3Status.JUKEBOX,
};

/** Maps anything thrown by a handler to an nfsstat3; unknown failures become SERVERFAULT. */
export function toNfsStatus(err: unknown): number {
  if (err instanceof NfsError) return err.status;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return ERRNO_TO_NFS[code] ?? Nfs3Status.IO;
  return Nfs3Status.SERVERFAULT;
}

/** mountstat3 values (RFC 1813 §5.1.5). */
export const MountStatus = {
  OK: 0,
  PERM: 1,
  NOENT: 2,
  IO: 5,
  ACCES: 13,
  NOTDIR: 20,
  INVAL: 22,
  NAMETOOLONG: 63,
  NOTSUPP: 10004,
  SERVERFAULT: 10006,
} as const;

/** Maps a failure while resolving a mount path to a mountstat3. */
export function toMountStatus(err: unknown): number {
  const s = toNfsStatus(err);
  switch (s) {
    case Nfs3Status.NOENT:
    case Nfs3Status.STALE:
      return MountStatus.NOENT;
    case Nfs3Status.NOTDIR:
      return MountStatus.NOTDIR;
    case Nfs3Status.ACCES:
    case Nfs3Status.PERM:
      return MountStatus.ACCES;
    case Nfs3Status.NAMETOOLONG:
      return MountStatus.NAMETOOLONG;
    case Nfs3Status.INVAL:
      return MountStatus.INVAL;
    case Nfs3Status.SERVERFAULT:
      return MountStatus.SERVERFAULT;
    default:
      return MountStatus.IO;
  }
}
