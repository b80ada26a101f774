import type { RequestOptions, Transport } from '../http.js';
import type { FileInfo } from '../schema.js';

/** What `write` and `upload` take: text, bytes, a Blob, or a stream (sent as it is read). */
export type FileData = string | Uint8Array | ArrayBuffer | Blob | ReadableStream<Uint8Array>;

/** `session.files`: the session's files (E2B's `sandbox.files`). Paths are relative to /workspace or absolute inside it. */
export class Files {
  constructor(
    private readonly http: Transport,
    private readonly base: string,
  ) {}

  /** A file's content as text (UTF-8). */
  async read(path: string, opts: RequestOptions = {}): Promise<string> {
    return (await this.http.call('GET', `${this.base}/files`, { query: { path }, signal: opts.signal })).text();
  }

  /** A file's content as bytes. */
  async readBytes(path: string, opts: RequestOptions = {}): Promise<Uint8Array> {
    return new Uint8Array(await (await this.http.call('GET', `${this.base}/files`, { query: { path }, signal: opts.signal })).arrayBuffer());
  }

  /** A file's content as a stream, read from the sandbox as it is consumed. */
  async download(path: string, opts: RequestOptions = {}): Promise<ReadableStream<Uint8Array>> {
    const res = await this.http.call('GET', `${this.base}/files`, { query: { path }, signal: opts.signal });
    return res.body as ReadableStream<Uint8Array>;
  }

  /** Writes a file (parents are created); `mode` in octal, e.g. `'755'`. */
  async write(path: string, data: FileData, opts: RequestOptions & { mode?: string } = {}): Promise<FileInfo> {
    const body = typeof data === 'string' ? new TextEncoder().encode(data) : data;
    return this.http.json<FileInfo>('PUT', `${this.base}/files`, { query: { path, mode: opts.mode }, body: body as BodyInit, headers: { 'content-type': 'application/octet-stream' }, signal: opts.signal });
  }

  /** Streams `data` into a file: `write` for large content (a stream is never held in memory). */
  async upload(path: string, data: FileData, opts: RequestOptions & { mode?: string } = {}): Promise<FileInfo> {
    return this.write(path, data, opts);
  }

  /** A directory's entries. */
  async list(path = '.', opts: RequestOptions = {}): Promise<FileInfo[]> {
    return (await this.http.json<{ entries: FileInfo[] }>('GET', `${this.base}/files/list`, { query: { path }, signal: opts.signal })).entries;
  }

  /** A path's type, size, mode and modification time. */
  async stat(path: string, opts: RequestOptions = {}): Promise<FileInfo> {
    return this.http.json<FileInfo>('GET', `${this.base}/files/stat`, { query: { path }, signal: opts.signal });
  }

  /** Whether a path exists. */
  async exists(path: string, opts: RequestOptions = {}): Promise<boolean> {
    return this.stat(path, opts).then(
      () => true,
      (err: { status?: number }) => {
        if (err.status === 404) return false;
        throw err;
      },
    );
  }

  /** Creates a directory and its parents. */
  async makeDir(path: string, opts: RequestOptions = {}): Promise<FileInfo> {
    return this.http.json<FileInfo>('POST', `${this.base}/files/mkdir`, { json: { path }, signal: opts.signal });
  }

  /** Removes a file, or a directory with `recursive`; false when it did not exist. */
  async remove(path: string, opts: RequestOptions & { recursive?: boolean } = {}): Promise<boolean> {
    return (await this.http.json<{ existed: boolean }>('DELETE', `${this.base}/files`, { query: { path, recursive: opts.recursive ? 'true' : undefined }, signal: opts.signal })).existed;
  }

  /** Renames or moves a path. */
  async rename(from: string, to: string, opts: RequestOptions = {}): Promise<FileInfo> {
    return this.http.json<FileInfo>('POST', `${this.base}/files/rename`, { json: { from, to }, signal: opts.signal });
  }

  /** A directory as a tar stream. */
  async downloadTar(path = '.', opts: RequestOptions = {}): Promise<ReadableStream<Uint8Array>> {
    return (await this.http.call('GET', `${this.base}/files/tar`, { query: { path }, signal: opts.signal })).body as ReadableStream<Uint8Array>;
  }

  /** Extracts a tar archive into a directory (created if missing). */
  async uploadTar(path: string, tar: FileData, opts: RequestOptions = {}): Promise<FileInfo> {
    return this.http.json<FileInfo>('PUT', `${this.base}/files/tar`, { query: { path }, body: tar as BodyInit, headers: { 'content-type': 'application/x-tar' }, signal: opts.signal });
  }
}
