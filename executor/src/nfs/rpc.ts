/**
 * ONC RPC v2 message framing (RFC 5531): decoding call headers and encoding
 * replies. Transport (record marking) lives in record.ts.
 */
import { XdrError, XdrReader, XdrWriter } from './xdr.js';

export const RPC_VERSION = 2;
const MSG_CALL = 0;
const MSG_REPLY = 1;
const MSG_ACCEPTED = 0;
const MSG_DENIED = 1;

/** accept_stat values. */
export const AcceptStat = {
  SUCCESS: 0,
  PROG_UNAVAIL: 1,
  PROG_MISMATCH: 2,
  PROC_UNAVAIL: 3,
  GARBAGE_ARGS: 4,
  SYSTEM_ERR: 5,
} as const;

/** auth_stat values used when denying a call. */
export const AuthStat = { BADCRED: 1, REJECTEDCRED: 2, BADVERF: 3, TOOWEAK: 5 } as const;

export const AUTH_NONE = 0;
export const AUTH_UNIX = 1;

/** Credentials carried by AUTH_UNIX (AUTH_SYS). Informational only: the server acts as the export's owner. */
export interface AuthUnix {
  stamp: number;
  machine: string;
  uid: number;
  gid: number;
  gids: number[];
}

/** A decoded call header; `args` is positioned at the procedure arguments. */
export interface RpcCall {
  xid: number;
  prog: number;
  vers: number;
  proc: number;
  flavor: number;
  unix?: AuthUnix;
  args: XdrReader;
}

/** Outcome of header decoding: a call to dispatch, or a ready-made rejection. */
export type ParsedCall = { ok: true; call: RpcCall } | { ok: false; reply: Buffer[] };

/**
 * Decodes the call header. Throws {@link XdrError} when the header itself is
 * malformed or the message is not a call: the caller closes the connection,
 * since there is no trustworthy xid to answer.
 */
export function parseCall(msg: Buffer): ParsedCall {
  const r = new XdrReader(msg);
  const xid = r.u32();
  if (r.u32() !== MSG_CALL) throw new XdrError('not an RPC call');
  const rpcvers = r.u32();
  const prog = r.u32();
  const vers = r.u32();
  const proc = r.u32();
  const flavor = r.u32();
  const credBody = r.opaque(400);
  r.u32(); // verifier flavor: ignored, we never authenticate verifiers
  r.opaque(400);
  if (rpcvers !== RPC_VERSION) {
    const w = replyHeader(xid, MSG_DENIED).u32(0 /* RPC_MISMATCH */).u32(RPC_VERSION).u32(RPC_VERSION);
    return { ok: false, reply: w.chunksOut() };
  }
  let unix: AuthUnix | undefined;
  if (flavor === AUTH_UNIX) {
    try {
      unix = decodeAuthUnix(credBody);
    } catch {
      return { ok: false, reply: deniedAuth(xid, AuthStat.BADCRED) };
    }
  } else if (flavor !== AUTH_NONE) {
    return { ok: false, reply: deniedAuth(xid, AuthStat.BADCRED) };
  }
  const call: RpcCall = { xid, prog, vers, proc, flavor, args: r };
  if (unix) call.unix = unix;
  return { ok: true, call };
}

function decodeAuthUnix(body: Buffer): AuthUnix {
  const r = new XdrReader(body);
  const stamp = r.u32();
  const machine = r.string(255);
  const uid = r.u32();
  const gid = r.u32();
  const n = r.u32();
  if (n > 16) throw new XdrError('too many gids');
  const gids: number[] = [];
  for (let i = 0; i < n; i++) gids.push(r.u32());
  return { stamp, machine, uid, gid, gids };
}

function replyHeader(xid: number, stat: number): XdrWriter {
  return new XdrWriter().u32(xid).u32(MSG_REPLY).u32(stat);
}

function deniedAuth(xid: number, why: number): Buffer[] {
  return replyHeader(xid, MSG_DENIED).u32(1 /* AUTH_ERROR */).u32(why).chunksOut();
}

/** Starts a SUCCESS reply; the procedure appends its results to the returned writer. */
export function successReply(xid: number): XdrWriter {
  return replyHeader(xid, MSG_ACCEPTED).u32(AUTH_NONE).u32(0).u32(AcceptStat.SUCCESS);
}

/** A complete accepted-but-failed reply (PROG_UNAVAIL, PROC_UNAVAIL, GARBAGE_ARGS, SYSTEM_ERR). */
export function errorReply(xid: number, stat: number): Buffer[] {
  return replyHeader(xid, MSG_ACCEPTED).u32(AUTH_NONE).u32(0).u32(stat).chunksOut();
}

/** PROG_MISMATCH reply announcing the single supported version. */
export function progMismatchReply(xid: number, low: number, high: number): Buffer[] {
  return replyHeader(xid, MSG_ACCEPTED).u32(AUTH_NONE).u32(0).u32(AcceptStat.PROG_MISMATCH).u32(low).u32(high).chunksOut();
}

/** Encodes a call message (used by the tests' raw client and kept here so both ends share one definition). */
export function encodeCall(
  xid: number,
  prog: number,
  vers: number,
  proc: number,
  args: Uint8Array,
  cred: { uid: number; gid: number } | undefined = { uid: 0, gid: 0 },
): Buffer {
  const w = new XdrWriter().u32(xid).u32(MSG_CALL).u32(RPC_VERSION).u32(prog).u32(vers).u32(proc);
  if (cred) {
    const body = new XdrWriter().u32(0).string('kiln-test').u32(cred.uid).u32(cred.gid).u32(0).toBuffer();
    w.u32(AUTH_UNIX).opaque(body);
  } else {
    w.u32(AUTH_NONE).u32(0);
  }
  w.u32(AUTH_NONE).u32(0).raw(args);
  return w.toBuffer();
}

/** Decoded reply header (used by the tests' raw client). */
export interface RpcReply {
  xid: number;
  /** 0 accepted, 1 denied */
  replyStat: number;
  /** accept_stat when accepted, reject_stat when denied */
  stat: number;
  body: XdrReader;
}

/** Decodes a reply header; `body` is positioned at the results. */
export function parseReply(msg: Buffer): RpcReply {
  const r = new XdrReader(msg);
  const xid = r.u32();
  if (r.u32() !== MSG_REPLY) throw new XdrError('not an RPC reply');
  const replyStat = r.u32();
  if (replyStat === MSG_ACCEPTED) {
    r.u32();
    r.opaque(400);
  }
  const stat = r.u32();
  return { xid, replyStat, stat, body: r };
}
