/**
 * What the gateway does with one client record: answer it here, or forward it to the executor
 * that holds a session (named by a MOUNT path or by the export tag in a file handle).
 */
import {
  GARBAGE_ARGS,
  MNT3ERR_ACCES,
  MNT3ERR_IO,
  MNT3ERR_NOENT,
  MOUNT_PROGRAM,
  NFS3ERR_ACCES,
  NFS3ERR_BADHANDLE,
  NFS3ERR_IO,
  NFS3ERR_STALE,
  NFS_PROGRAM,
  PROC_UNAVAIL,
  PROG_UNAVAIL,
  RpcParseError,
  VERSION_3,
  acceptErrorReply,
  handleTag,
  isHandleProcedure,
  mountPathSession,
  nfsFailureReply,
  parseCallHeader,
  progMismatchReply,
  successReply,
} from './rpc.js';

/**
 * Where a record goes; `miss` is the answer when the session or tag is not known (any more),
 * `refused` when its session is paused with autoResume false (ACCES) or could not be resumed (IO).
 */
export type Decision =
  | { to: 'local'; reply: Buffer }
  | { to: 'session'; sessionId: string; miss: Buffer; refused: Refused }
  | { to: 'tag'; tag: string; miss: Buffer; refused: Refused };

export interface Refused {
  paused: Buffer;
  failed: Buffer;
}

const MOUNT = { NULL: 0, MNT: 1, DUMP: 2, UMNT: 3, UMNTALL: 4, EXPORT: 5 } as const;

/**
 * Decides for one record. Throws {@link RpcParseError} when the call header itself is
 * unreadable: there is no xid to answer, so the caller closes the connection.
 */
export function decide(rec: Buffer): Decision {
  const call = parseCallHeader(rec);
  const local = (reply: Buffer): Decision => ({ to: 'local', reply });
  if (call.prog !== NFS_PROGRAM && call.prog !== MOUNT_PROGRAM) return local(acceptErrorReply(call.xid, PROG_UNAVAIL));
  if (call.vers !== VERSION_3) return local(progMismatchReply(call.xid));
  try {
    if (call.prog === MOUNT_PROGRAM) {
      switch (call.proc) {
        case MOUNT.NULL:
        case MOUNT.UMNT: // executors keep no mount table, so there is nothing to forward
        case MOUNT.UMNTALL:
          return local(successReply(call.xid));
        case MOUNT.DUMP:
        case MOUNT.EXPORT:
          // Empty lists: listing sessions would show every client every other client's ids.
          return local(successReply(call.xid, [0]));
        case MOUNT.MNT: {
          const miss = successReply(call.xid, [MNT3ERR_NOENT]);
          const sessionId = mountPathSession(rec, call);
          const refused = { paused: successReply(call.xid, [MNT3ERR_ACCES]), failed: successReply(call.xid, [MNT3ERR_IO]) };
          return sessionId ? { to: 'session', sessionId, miss, refused } : local(miss);
        }
        default:
          return local(acceptErrorReply(call.xid, PROC_UNAVAIL));
      }
    }
    if (call.proc === 0) return local(successReply(call.xid));
    if (!isHandleProcedure(call.proc)) return local(acceptErrorReply(call.xid, PROC_UNAVAIL));
    const tag = handleTag(rec, call);
    if (!tag) return local(nfsFailureReply(call.xid, call.proc, NFS3ERR_BADHANDLE));
    const refused = { paused: nfsFailureReply(call.xid, call.proc, NFS3ERR_ACCES), failed: nfsFailureReply(call.xid, call.proc, NFS3ERR_IO) };
    return { to: 'tag', tag, miss: nfsFailureReply(call.xid, call.proc, NFS3ERR_STALE), refused };
  } catch (err) {
    // The header was fine, so the client gets an answer for its xid rather than a hang-up.
    if (err instanceof RpcParseError) return local(acceptErrorReply(call.xid, GARBAGE_ARGS));
    throw err;
  }
}
