import type { RequestOptions, Transport } from '../http.js';
import type { CreateSessionParams, SessionInfo } from '../schema.js';
import { Session } from './session.js';

/** `kiln.sessions`: create, find and list sessions. */
export class Sessions {
  constructor(private readonly http: Transport) {}

  /** Leases a sandbox of `template` (default nodejs). */
  async create(params: CreateSessionParams = {}, opts: RequestOptions = {}): Promise<Session> {
    return new Session(this.http, await this.http.json<SessionInfo>('POST', '/api/v1/sessions', { json: params, signal: opts.signal }));
  }

  /** A new session whose /workspace holds a snapshot's files (of the snapshot's template unless `template` is given). */
  async createFromSnapshot(snapshotId: string, params: Omit<CreateSessionParams, 'fromSnapshot'> = {}, opts: RequestOptions = {}): Promise<Session> {
    return this.create({ ...params, fromSnapshot: snapshotId }, opts);
  }

  /** An existing session by id (SessionNotFoundError when unknown, or another tenant's). */
  async connect(id: string, opts: RequestOptions = {}): Promise<Session> {
    return new Session(this.http, await this.http.json<SessionInfo>('GET', `/api/v1/sessions/${encodeURIComponent(id)}`, { signal: opts.signal }));
  }

  /** The tenant's sessions, filtered by template and by metadata (every pair must match). */
  async list(filter: { template?: string; metadata?: Record<string, string> } = {}, opts: RequestOptions = {}): Promise<SessionInfo[]> {
    const query: Record<string, string | undefined> = { template: filter.template };
    // OpenAPI's deepObject style, as the document describes the filter.
    for (const [k, v] of Object.entries(filter.metadata ?? {})) query[`metadata[${k}]`] = v;
    return (await this.http.json<{ sessions: SessionInfo[] }>('GET', '/api/v1/sessions', { query, signal: opts.signal })).sessions;
  }

  /** Ends a session by id. */
  async kill(id: string, opts: RequestOptions = {}): Promise<void> {
    await this.http.call('DELETE', `/api/v1/sessions/${encodeURIComponent(id)}`, { signal: opts.signal });
  }
}
