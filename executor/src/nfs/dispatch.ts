/**
 * Routes a decoded RPC call to MOUNT or NFS by program number (both live on
 * one port, so no portmapper is needed) and builds the complete reply.
 */
import type { ExportRegistry } from './exports.js';
import { MOUNT_PROGRAM, MOUNT_V3, dispatchMount } from './mount.js';
import { NFS_PROGRAM, NFS_V3, dispatchNfs3 } from './nfs3.js';
import { AcceptStat, type RpcCall, errorReply, progMismatchReply, successReply } from './rpc.js';
import type { NfsLogger } from './types.js';
import { XdrError, type XdrWriter } from './xdr.js';

/** Answers one call; never throws (failures become RPC error replies). */
export type CallHandler = (call: RpcCall, client: string | undefined) => Promise<Buffer[]>;

/** Builds the handler shared by all connections of one server. */
export function createCallHandler(registry: ExportRegistry, writeVerf: Buffer, log: NfsLogger): CallHandler {
  const onFault = (proc: number, err: unknown): void => log.fault(`NFS proc ${proc} failed`, err);
  return async (call, client) => {
    const { xid, prog, vers, proc, args } = call;
    let body: XdrWriter | undefined;
    try {
      if (prog === NFS_PROGRAM) {
        if (vers !== NFS_V3) return progMismatchReply(xid, NFS_V3, NFS_V3);
        const ctx = { registry, client, writeVerf, ...(call.unix ? { cred: call.unix } : {}) };
        body = await dispatchNfs3(ctx, proc, args, onFault);
      } else if (prog === MOUNT_PROGRAM) {
        if (vers !== MOUNT_V3) return progMismatchReply(xid, MOUNT_V3, MOUNT_V3);
        body = await dispatchMount({ registry, client }, proc, args);
      } else {
        return errorReply(xid, AcceptStat.PROG_UNAVAIL);
      }
    } catch (e) {
      if (e instanceof XdrError) {
        log.trace?.(`prog ${prog} proc ${proc}: garbage args (${e.message})`);
        return errorReply(xid, AcceptStat.GARBAGE_ARGS);
      }
      log.fault(`prog ${prog} proc ${proc} threw`, e);
      return errorReply(xid, AcceptStat.SYSTEM_ERR);
    }
    if (!body) return errorReply(xid, AcceptStat.PROC_UNAVAIL);
    const out = [...successReply(xid).chunksOut(), ...body.chunksOut()];
    if (log.trace) {
      const status = out.length > 1 && out[1] && out[1].length >= 4 ? out[1].readUInt32BE(0) : -1;
      log.trace(`prog ${prog} proc ${proc} -> ${status}`);
    }
    return out;
  };
}
