import type { RequestOptions, Transport } from './http.js';
import type { SnapshotInfo } from './schema.js';

/** `kiln.snapshots`: the tenant's saved workspaces (made with `session.snapshot()`). */
export class Snapshots {
  constructor(private readonly http: Transport) {}

  async list(opts: RequestOptions = {}): Promise<SnapshotInfo[]> {
    return (await this.http.json<{ snapshots: SnapshotInfo[] }>('GET', '/api/v1/snapshots', { signal: opts.signal })).snapshots;
  }

  /** One snapshot (SnapshotNotFoundError when unknown, or another tenant's). */
  async get(id: string, opts: RequestOptions = {}): Promise<SnapshotInfo> {
    return this.http.json<SnapshotInfo>('GET', `/api/v1/snapshots/${encodeURIComponent(id)}`, { signal: opts.signal });
  }

  /** Deletes it and its archive; sessions started from it are not affected. */
  async delete(id: string, opts: RequestOptions = {}): Promise<void> {
    await this.http.call('DELETE', `/api/v1/snapshots/${encodeURIComponent(id)}`, { signal: opts.signal });
  }
}
