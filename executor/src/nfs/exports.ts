/**
 * Live exports: maps export ids (via the resolver, consulted on every call)
 * to their {@link ExportFs}, and turns client handles back into inodes with
 * all the checks that makes safe.
 */
import { isAllowed } from './allow.js';
import { Nfs3Status, NfsError } from './errors.js';
import type { HandleCodec } from './handles.js';
import type { ExportResolver } from './types.js';
import { ExportFs } from './vfs.js';

/** A verified handle: the export it belongs to and the inode key within it. */
export interface Resolved {
  efs: ExportFs;
  key: string;
}

export class ExportRegistry {
  private readonly live = new Map<string, { root: string; efs: Promise<ExportFs> }>();

  constructor(
    private readonly resolver: ExportResolver,
    private readonly codec: HandleCodec,
  ) {}

  /**
   * The current state for export `id`, or undefined when the session is gone
   * (its state is then dropped, so its handles go STALE). A changed root
   * starts a fresh state: handles into the old tree must not carry over.
   */
  async get(id: string): Promise<ExportFs | undefined> {
    const exp = this.resolver.resolve(id);
    const cur = this.live.get(id);
    if (!exp) {
      if (cur) this.drop(id);
      return undefined;
    }
    if (cur && cur.root !== exp.root) this.drop(id);
    let entry = this.live.get(id);
    if (!entry) {
      entry = { root: exp.root, efs: ExportFs.open(exp) };
      this.live.set(id, entry);
      const e = entry;
      // A root that cannot be opened is not cached: the next call retries.
      e.efs.catch(() => {
        if (this.live.get(id) === e) this.live.delete(id);
      });
    }
    const efs = await entry.efs.catch(() => undefined);
    if (efs) efs.exp = exp;
    return efs;
  }

  /**
   * Verifies a handle sent by `client`: MAC, live export, allow-list, and
   * that the inode was handed out by this very export.
   */
  async fromHandle(fh: Buffer, client: string | undefined): Promise<Resolved> {
    const t = this.codec.decode(fh);
    const efs = await this.get(t.exportId);
    if (!efs) throw new NfsError(Nfs3Status.STALE, 'export gone');
    if (!isAllowed(efs.exp.allow, client)) throw new NfsError(Nfs3Status.ACCES, 'client not allowed');
    const key = `${t.dev}:${t.ino}`;
    if (!efs.has(key)) throw new NfsError(Nfs3Status.STALE, 'unknown inode');
    return { efs, key };
  }

  /** Seals a handle for inode `key` of `efs`. */
  handle(efs: ExportFs, key: string): Buffer {
    const [dev, ino] = key.split(':');
    return this.codec.encode(efs.exp.id, BigInt(dev ?? 0), BigInt(ino ?? 0));
  }

  private drop(id: string): void {
    const cur = this.live.get(id);
    this.live.delete(id);
    this.codec.forget(id);
    cur?.efs.then((efs) => efs.dispose()).catch(() => undefined);
  }

  /** Releases every export's fds (server shutdown). */
  async closeAll(): Promise<void> {
    const all = [...this.live.values()];
    this.live.clear();
    await Promise.all(all.map((e) => e.efs.then((efs) => efs.dispose()).catch(() => undefined)));
  }
}
