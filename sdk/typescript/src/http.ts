import { errorFrom, KilnError, RateLimitError, UnavailableError } from './errors.js';

/** The WebSocket constructor the terminal uses: the browser's, Node 22's, or the `ws` package's. */
export type WebSocketLike = new (url: string, protocols?: string | string[], options?: { headers?: Record<string, string> }) => WebSocket;

export interface KilnOptions {
  /** The Kiln server, e.g. `http://127.0.0.1:8080` (default: KILN_URL where there is a `process`, else that). */
  url?: string;
  /** An API key (default: KILN_API_KEY where there is a `process`); absent for a keyless local Kiln. */
  apiKey?: string;
  /** Retries of a request refused with 429 or 503 (default 3). */
  maxRetries?: number;
  /** First backoff delay; doubles per retry, with jitter (default 250 ms). Retry-After wins when longer. */
  retryBaseMs?: number;
  /** Longest wait between two attempts (default 30000 ms). */
  maxRetryDelayMs?: number;
  /** A fetch to use instead of the global one. */
  fetch?: typeof fetch;
  /** The WebSocket class for terminals (default the global one; on Node 20 pass `ws`'s). */
  WebSocket?: WebSocketLike;
}

export type Query = Record<string, string | number | boolean | undefined>;

export interface CallOptions {
  query?: Query;
  /** A JSON body. */
  json?: unknown;
  /** A raw body; a ReadableStream is sent streamed and is never retried (it cannot be replayed). */
  body?: BodyInit;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** Per-call options every SDK method takes. */
export interface RequestOptions {
  /** Cancels the call (and a stream it returned). */
  signal?: AbortSignal;
}

function env(name: string): string | undefined {
  // Browsers have no process: the options must carry the URL and key there.
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return proc?.env?.[name];
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Sends requests to Kiln: the key on every request, typed errors for every refusal, and
 * retries with exponential backoff and jitter on 429 and 503/502 (Kiln refuses those before it
 * acts, so a retry never runs anything twice), waiting at least what Retry-After says.
 */
export class Transport {
  readonly url: string;
  readonly apiKey: string | undefined;
  readonly WebSocket: WebSocketLike | undefined;
  private readonly fetchFn: typeof fetch;
  private readonly maxRetries: number;
  private readonly retryBaseMs: number;
  private readonly maxRetryDelayMs: number;

  constructor(opts: KilnOptions = {}) {
    this.url = (opts.url ?? env('KILN_URL') ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
    this.apiKey = opts.apiKey ?? env('KILN_API_KEY');
    this.fetchFn = opts.fetch ?? globalThis.fetch.bind(globalThis);
    this.maxRetries = opts.maxRetries ?? 3;
    this.retryBaseMs = opts.retryBaseMs ?? 250;
    this.maxRetryDelayMs = opts.maxRetryDelayMs ?? 30_000;
    this.WebSocket = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketLike }).WebSocket;
  }

  /** `path` with its query string, relative to the server. */
  href(path: string, query?: Query): string {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) q.set(k, String(v));
    const s = q.toString();
    return `${this.url}${path}${s ? `?${s}` : ''}`;
  }

  authHeaders(): Record<string, string> {
    return this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : {};
  }

  /** A successful response (2xx), or throws the typed error. The caller reads the body. */
  async call(method: string, path: string, opts: CallOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { ...this.authHeaders(), ...opts.headers };
    let body: BodyInit | undefined = opts.body;
    if (opts.json !== undefined) {
      body = JSON.stringify(opts.json);
      headers['content-type'] = 'application/json';
    }
    const streamed = typeof ReadableStream !== 'undefined' && body instanceof ReadableStream;
    for (let attempt = 0; ; attempt++) {
      const init: RequestInit & { duplex?: 'half' } = { method, headers, signal: opts.signal ?? null };
      if (body !== undefined) init.body = body;
      // fetch needs this to send a stream as the body (Node's and browsers').
      if (streamed) init.duplex = 'half';
      const res = await this.fetchFn(this.href(path, opts.query), init);
      if (res.ok) return res;
      const err = errorFrom(res.status, await res.text(), res.headers);
      if (streamed || attempt >= this.maxRetries || !(err instanceof RateLimitError || err instanceof UnavailableError)) throw err;
      await sleep(this.delayMs(attempt, err.retryAfterSeconds), opts.signal);
    }
  }

  /** JSON of a successful response. */
  async json<T>(method: string, path: string, opts: CallOptions = {}): Promise<T> {
    const res = await this.call(method, path, opts);
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }

  private delayMs(attempt: number, retryAfter: number | undefined): number {
    const backoff = this.retryBaseMs * 2 ** attempt;
    const jittered = backoff / 2 + Math.random() * (backoff / 2);
    return Math.min(this.maxRetryDelayMs, Math.max(jittered, (retryAfter ?? 0) * 1000));
  }
}

/** Thrown by the SDK for a response it cannot read as what the route promises. */
export function unexpected(message: string): KilnError {
  return new KilnError('UnexpectedResponse', message);
}
