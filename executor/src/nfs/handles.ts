/**
 * NFS file handles. A handle names one inode of one export and is sealed with
 * an HMAC under a secret drawn when the server starts, so clients can neither
 * forge a handle for another export or inode nor reuse handles across a
 * restart (they fail the MAC and read as NFS3ERR_STALE).
 *
 * Layout (41 bytes, well under the 64-byte NFSv3 limit):
 *   version(1) | exportTag(8) | dev(8) | ino(8) | hmac-sha256 truncated(16)
 * The export tag is itself an HMAC of the export id, so handles do not reveal
 * session ids and a tag can only be mapped back to an id this server has seen.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { Nfs3Status, NfsError } from './errors.js';

const VERSION = 1;
const TAG_LEN = 8;
const MAC_LEN = 16;
/** Encoded handle length. */
export const HANDLE_LEN = 1 + TAG_LEN + 8 + 8 + MAC_LEN;
/** NFSv3 FHSIZE3: the most a client may send. */
export const NFS3_FHSIZE = 64;

/** What a verified handle names. */
export interface HandleTarget {
  exportId: string;
  dev: bigint;
  ino: bigint;
}

/** Creates and verifies handles; one instance per server start. */
export class HandleCodec {
  private readonly secret: Buffer;
  /** tag (hex) → export id, for exports this server has handed handles out for. */
  private readonly tags = new Map<string, string>();

  constructor(secret: Buffer = randomBytes(32)) {
    this.secret = secret;
  }

  private readonly tagCache = new Map<string, Buffer>();

  /**
   * The export's tag as hex. The control plane's NFS gateway learns it from SessionBind, so it
   * can route handles of this export to this executor without knowing the secret.
   */
  exportTag(id: string): string {
    return this.tagOf(id).toString('hex');
  }

  private tagOf(id: string): Buffer {
    let tag = this.tagCache.get(id);
    if (!tag) {
      tag = createHmac('sha256', this.secret).update('export\0').update(id).digest().subarray(0, TAG_LEN);
      this.tagCache.set(id, tag);
    }
    return tag;
  }

  /** Seals a handle for inode (dev, ino) of export `exportId`. */
  encode(exportId: string, dev: bigint, ino: bigint): Buffer {
    const tag = this.tagOf(exportId);
    this.tags.set(tag.toString('hex'), exportId);
    const fh = Buffer.alloc(HANDLE_LEN);
    fh[0] = VERSION;
    tag.copy(fh, 1);
    fh.writeBigUInt64BE(dev, 1 + TAG_LEN);
    fh.writeBigUInt64BE(ino, 1 + TAG_LEN + 8);
    this.mac(fh.subarray(0, HANDLE_LEN - MAC_LEN)).copy(fh, HANDLE_LEN - MAC_LEN);
    return fh;
  }

  /**
   * Verifies a client-supplied handle. Wrong shape → BADHANDLE; a handle that
   * was well-formed but is not ours (forged, or from before a restart) → STALE.
   */
  decode(fh: Buffer): HandleTarget {
    if (fh.length !== HANDLE_LEN || fh[0] !== VERSION) throw new NfsError(Nfs3Status.BADHANDLE, 'malformed handle');
    const body = fh.subarray(0, HANDLE_LEN - MAC_LEN);
    const mac = fh.subarray(HANDLE_LEN - MAC_LEN);
    if (!timingSafeEqual(mac, this.mac(body))) throw new NfsError(Nfs3Status.STALE, 'handle MAC mismatch');
    const exportId = this.tags.get(fh.subarray(1, 1 + TAG_LEN).toString('hex'));
    if (exportId === undefined) throw new NfsError(Nfs3Status.STALE, 'unknown export tag');
    return {
      exportId,
      dev: fh.readBigUInt64BE(1 + TAG_LEN),
      ino: fh.readBigUInt64BE(1 + TAG_LEN + 8),
    };
  }

  /** Forgets an export's tag (session ended), so its outstanding handles read as STALE. */
  forget(exportId: string): void {
    const tag = this.tagCache.get(exportId);
    if (tag) this.tags.delete(tag.toString('hex'));
    this.tagCache.delete(exportId);
  }

  private mac(body: Buffer): Buffer {
    return createHmac('sha256', this.secret).update(body).digest().subarray(0, MAC_LEN);
  }
}
