import { ConflictError } from '../errors.js';
import type { RequestOptions, Transport } from '../http.js';
import type { Execution, FunctionCreate, FunctionInfo, FunctionUpdate } from '../schema.js';
import { toBase64, zip, type ZipEntry } from './zip.js';

type Settings = Omit<FunctionCreate, 'name' | 'runtime' | 'code'>;

export interface DeployParams extends Settings {
  name: string;
  /** e.g. `nodejs20.x`, `python3.12`. */
  runtime: string;
  /** The package's files, path → content; zipped by the SDK. */
  files?: Record<string, string | Uint8Array>;
  /** A zip archive of the package (Lambda layout: the handler module at the root). */
  zip?: Uint8Array;
  /** Publish a numbered version after the change. */
  publish?: boolean;
}

export interface InvokeOptions extends RequestOptions {
  /** `$LATEST` (default), a version or an alias. */
  qualifier?: string;
  /** Retried asynchronous submissions with the same key are one invocation. */
  idempotencyKey?: string;
}

/** `kiln.functions`: Lambda-style functions in the key's tenant. */
export class Functions {
  constructor(protected readonly http: Transport) {}

  /**
   * Creates the function, or updates its code and settings when it exists: the one call a
   * deploy script needs. Returns the function as it now is.
   */
  async deploy(params: DeployParams, opts: RequestOptions = {}): Promise<FunctionInfo> {
    const { name, runtime, files, zip: archive, publish, ...settings } = params;
    const entries: ZipEntry[] = Object.entries(files ?? {}).map(([path, content]) => ({ path, data: typeof content === 'string' ? new TextEncoder().encode(content) : content }));
    const bytes = archive ?? zip(entries);
    const code = { zipFile: toBase64(bytes) };
    try {
      return await this.http.json<FunctionInfo>('POST', '/api/v1/functions', { json: { name, runtime, code, ...settings, ...(publish ? { publish } : {}) }, signal: opts.signal });
    } catch (err) {
      if (!(err instanceof ConflictError && err.code === 'FunctionExists')) throw err;
    }
    const update: FunctionUpdate = { runtime, code, ...settings, ...(publish ? { publish } : {}) };
    return this.http.json<FunctionInfo>('PUT', `/api/v1/functions/${encodeURIComponent(name)}`, { json: update, signal: opts.signal });
  }

  /**
   * Invokes a function with `event` and waits for the result. The record's `status` says how the
   * handler ended (`succeeded`, `failed` with a Lambda-shaped `error`, `timeout`); `result` is
   * what it returned. A refusal (unknown function, quota) is thrown as a typed error instead.
   */
  async invoke(name: string, event: unknown = {}, opts: InvokeOptions = {}): Promise<Execution> {
    return this.http.json<Execution>('POST', `/api/v1/functions/${encodeURIComponent(name)}/invocations`, { json: event, query: { qualifier: opts.qualifier }, signal: opts.signal });
  }

  /** Queues an invocation (`type=Event`); returns its id, to poll with `kiln.executions.get`. */
  async invokeAsync(name: string, event: unknown = {}, opts: InvokeOptions = {}): Promise<{ id: string }> {
    const headers: Record<string, string> = opts.idempotencyKey ? { 'idempotency-key': opts.idempotencyKey } : {};
    return this.http.json<{ id: string }>('POST', `/api/v1/functions/${encodeURIComponent(name)}/invocations`, { json: event, query: { qualifier: opts.qualifier, type: 'Event' }, headers, signal: opts.signal });
  }

  async get(name: string, opts: RequestOptions & { qualifier?: string } = {}): Promise<FunctionInfo> {
    return this.http.json<FunctionInfo>('GET', `/api/v1/functions/${encodeURIComponent(name)}`, { query: { qualifier: opts.qualifier }, signal: opts.signal });
  }

  /** The tenant's functions in name order (every page). */
  async list(opts: RequestOptions = {}): Promise<FunctionInfo[]> {
    const all: FunctionInfo[] = [];
    let marker: string | undefined;
    do {
      const page = await this.http.json<{ functions: FunctionInfo[]; nextMarker?: string }>('GET', '/api/v1/functions', { query: { marker }, signal: opts.signal });
      all.push(...page.functions);
      marker = page.nextMarker;
    } while (marker);
    return all;
  }

  /** Deletes a function, or one version with `qualifier`. */
  async delete(name: string, opts: RequestOptions & { qualifier?: string } = {}): Promise<void> {
    await this.http.call('DELETE', `/api/v1/functions/${encodeURIComponent(name)}`, { query: { qualifier: opts.qualifier }, signal: opts.signal });
  }
}
