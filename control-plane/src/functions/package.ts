import { createHash, randomBytes } from 'node:crypto';
import { ValidationError } from '../errors.js';
import type { CodeFile } from '../invocation/contract.js';
import { handlerFile } from '../invocation/languages.js';
import type { BlobStore } from '../storage/blobs.js';
import type { BlobRetirements } from '../storage/retired.js';
import type { FunctionRuntime } from './types.js';
import { readZip } from './zip.js';

/** What a create or code update brings: a zip archive, or one source file (REST only). */
export type CodeInput = { zipFile: Buffer } | { source: string };

/** An unpacked code package, ready to store and to send to executors. */
export interface CodePackage {
  files: CodeFile[];
  /** base64 SHA-256 of what was uploaded, as Lambda's CodeSha256. */
  sha256: string;
  size: number;
}

export function unpack(code: CodeInput, runtime: FunctionRuntime, handler: string): CodePackage {
  if ('zipFile' in code) {
    const files = readZip(code.zipFile).map((e) => ({ path: e.path, content: e.content.toString('base64'), mode: e.mode }));
    return { files, sha256: createHash('sha256').update(code.zipFile).digest('base64'), size: code.zipFile.length };
  }
  const bytes = Buffer.from(code.source, 'utf8');
  const file = handlerFile(runtime, handler, code.source);
  return { files: [{ ...file, content: bytes.toString('base64') }], sha256: createHash('sha256').update(bytes).digest('base64'), size: bytes.length };
}

/** How long a package no version uses is kept for the jobs queued before (Lambda's maximum event age, 6 h). */
export const RETIRED_PACKAGE_SECONDS = 6 * 3600;

/** Cap on unpacked packages kept in memory; a miss costs one Redis read and a JSON parse. */
const CACHE_BYTES = 64 * 1024 * 1024;

/**
 * Unpacked code packages in the blob store, keyed by function and hash. Packages are
 * immutable once written, so this replica caches them (least recently used out first).
 */
export class CodePackages {
  private readonly cache = new Map<string, { files: CodeFile[]; bytes: number }>();
  private cached = 0;

  constructor(
    private readonly blobs: BlobStore,
    private readonly retirements: Pick<BlobRetirements, 'retire'>,
  ) {}

  /**
   * Where a package is stored: per tenant and function, so that two tenants' `hello` with the
   * same code never share a package (deleting one would take the other's code away), and a new
   * key for every upload (hash and a random suffix), so a package retired by an update is never
   * written again under the same key and brought back into use while its deletion is due
   * (storage/retired.ts). Versions share $LATEST's package when they publish it. Records keep
   * the key they were written with, so packages stored before (`code/<name>/<hash>`,
   * `code/<tenant>/<name>/<hash>`) stay readable.
   */
  static keyOf(fn: { tenant: string; name: string }, sha256: string): string {
    return `${CodePackages.folderOf(fn)}/${Buffer.from(sha256, 'base64').toString('hex')}-${randomBytes(6).toString('hex')}`;
  }

  async save(fn: { tenant: string; name: string }, pkg: CodePackage): Promise<string> {
    const key = CodePackages.keyOf(fn, pkg.sha256);
    await this.blobs.put(key, Buffer.from(JSON.stringify(pkg.files)));
    return key;
  }

  async load(key: string): Promise<CodeFile[] | undefined> {
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit.files;
    }
    const blob = await this.blobs.get(key);
    if (!blob) return undefined;
    const files = JSON.parse(blob.toString('utf8')) as CodeFile[];
    this.remember(key, files, blob.length);
    return files;
  }

  /**
   * A package no version uses any more, after a code update or a version's deletion: jobs queued
   * before still name it (they load it when they run, invocation/dispatch.ts), so it is kept for
   * Lambda's longest event age, then deleted (storage/retired.ts).
   */
  async retire(key: string): Promise<void> {
    await this.retirements.retire(key, RETIRED_PACKAGE_SECONDS);
  }

  /** Deletes every package of a function, retired ones included (the function is deleted). */
  async deleteAll(fn: { tenant: string; name: string }): Promise<void> {
    for (const key of [...this.cache.keys()]) if (key.startsWith(`${CodePackages.folderOf(fn)}/`)) this.forget(key);
    await this.blobs.deleteFolder(CodePackages.folderOf(fn));
  }

  private static folderOf(fn: { tenant: string; name: string }): string {
    return `code/${fn.tenant}/${fn.name}`;
  }

  async delete(key: string): Promise<void> {
    this.forget(key);
    await this.blobs.delete(key);
  }

  private forget(key: string): void {
    const hit = this.cache.get(key);
    if (hit) this.cached -= hit.bytes;
    this.cache.delete(key);
  }

  private remember(key: string, files: CodeFile[], bytes: number): void {
    if (bytes > CACHE_BYTES / 4) return;
    this.cache.set(key, { files, bytes });
    this.cached += bytes;
    for (const [k, v] of this.cache) {
      if (this.cached <= CACHE_BYTES) break;
      this.cache.delete(k);
      this.cached -= v.bytes;
    }
  }
}

/** Decodes a base64 zip from a JSON body; Buffer.from would silently skip bad characters. */
export function zipFromBase64(field: string, text: string): CodeInput {
  const clean = text.replace(/\s+/g, '');
  if (!clean || !/^[A-Za-z0-9+/]*={0,2}$/.test(clean) || clean.length % 4 === 1) {
    throw new ValidationError(`${field} must be a base64-encoded zip archive`, { field });
  }
  return { zipFile: Buffer.from(clean, 'base64') };
}
