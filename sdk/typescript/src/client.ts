import { Functions } from './functions/functions.js';
import { Transport, type KilnOptions, type RequestOptions } from './http.js';
import type { Execution, Template } from './schema.js';
import { Sessions } from './sessions/sessions.js';
import { Snapshots } from './snapshots.js';
import { Volumes } from './volumes.js';

/** Filters of the execution history (every one optional). */
export interface ExecutionFilter {
  function?: string;
  template?: string;
  status?: 'succeeded' | 'failed' | 'timeout';
  /** Milliseconds since the epoch or an ISO 8601 UTC time. */
  since?: string | number;
  until?: string | number;
  limit?: number;
  /** The previous page's `nextCursor`. */
  cursor?: string;
}

/** An execution as the history lists it: with the function it belongs to, if any. */
export type ExecutionEntry = Execution & { function?: { name: string; version: string } };

/** Ad-hoc executions and the execution history. */
export class Executions {
  constructor(private readonly http: Transport) {}
  /** One page of finished executions, newest first. */
  async list(filter: ExecutionFilter = {}, opts: RequestOptions = {}): Promise<{ executions: ExecutionEntry[]; nextCursor?: string }> {
    return this.http.json('GET', '/api/v1/executions', { query: { ...filter }, signal: opts.signal });
  }
  /** One execution or invocation record by id. */
  async get(id: string, opts: RequestOptions = {}): Promise<Execution> {
    return this.http.json<Execution>('GET', `/api/v1/executions/${encodeURIComponent(id)}`, { signal: opts.signal });
  }
}

/** Templates: what sessions and functions run on. */
export class Templates {
  constructor(private readonly http: Transport) {}
  async list(opts: RequestOptions = {}): Promise<Template[]> {
    return (await this.http.json<{ templates: Template[] }>('GET', '/api/v1/templates', { signal: opts.signal })).templates;
  }
}

/**
 * A client of one Kiln server: `new Kiln({ url, apiKey })`. Everything it does goes through one
 * Transport (retries, typed errors, the key).
 */
export class Kiln {
  readonly sessions: Sessions;
  readonly functions: Functions;
  readonly executions: Executions;
  readonly templates: Templates;
  readonly snapshots: Snapshots;
  readonly volumes: Volumes;
  protected readonly http: Transport;

  constructor(opts: KilnOptions = {}) {
    this.http = new Transport(opts);
    this.sessions = new Sessions(this.http);
    this.functions = new Functions(this.http);
    this.executions = new Executions(this.http);
    this.templates = new Templates(this.http);
    this.snapshots = new Snapshots(this.http);
    this.volumes = new Volumes(this.http);
  }

  /** The server's URL. */
  get url(): string {
    return this.http.url;
  }

  /** The server's health (Redis, executors); public. */
  async health(opts: RequestOptions = {}): Promise<{ status: string } & Record<string, unknown>> {
    return this.http.json('GET', '/api/v1/health', { signal: opts.signal });
  }
}
