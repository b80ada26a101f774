import type { RequestOptions, Transport } from './http.js';
import type { CreateVolumeParams, VolumeInfo } from './schema.js';

/**
 * `kiln.volumes`: the tenant's named volumes, which outlive sessions. Mount one when a session
 * is created: `kiln.sessions.create({ volumes: [{ name, path: '/mnt/data', readOnly }] })` (a
 * session with volumes boots a sandbox of its own: a cold start).
 */
export class Volumes {
  constructor(private readonly http: Transport) {}

  /**
   * Creates a volume of `sizeMB` (ConflictError when the name is taken). With `idempotencyKey`,
   * repeating the same create returns the same volume instead.
   */
  async create(params: CreateVolumeParams, opts: RequestOptions & { idempotencyKey?: string } = {}): Promise<VolumeInfo> {
    const headers: Record<string, string> = opts.idempotencyKey ? { 'idempotency-key': opts.idempotencyKey } : {};
    return this.http.json<VolumeInfo>('POST', '/api/v1/volumes', { json: params, headers, signal: opts.signal });
  }

  async list(opts: RequestOptions = {}): Promise<VolumeInfo[]> {
    return (await this.http.json<{ volumes: VolumeInfo[] }>('GET', '/api/v1/volumes', { signal: opts.signal })).volumes;
  }

  /** One volume (VolumeNotFoundError when unknown, or another tenant's). */
  async get(name: string, opts: RequestOptions = {}): Promise<VolumeInfo> {
    return this.http.json<VolumeInfo>('GET', `/api/v1/volumes/${encodeURIComponent(name)}`, { signal: opts.signal });
  }

  /**
   * Stores a synced volume, as session `sessionId` sees it now, as the volume's next generation
   * (a `mode: 'synced'` volume the session mounts read-write); answers the volume after. A volume
   * whose files pass its `sizeMB` is refused (413 VolumeTooLarge) and keeps its previous generation.
   */
  async sync(sessionId: string, name: string, opts: RequestOptions = {}): Promise<VolumeInfo> {
    return this.http.json<VolumeInfo>('POST', `/api/v1/sessions/${encodeURIComponent(sessionId)}/volumes/${encodeURIComponent(name)}/sync`, { signal: opts.signal });
  }

  /** Deletes it and its data (VolumeInUseError while a live session mounts it). */
  async delete(name: string, opts: RequestOptions = {}): Promise<void> {
    await this.http.call('DELETE', `/api/v1/volumes/${encodeURIComponent(name)}`, { signal: opts.signal });
  }
}
