import type { SessionAgent } from '../agent/session-client.js';
import { KilnError } from '../errors.js';
import { checkTar } from './tar-guard.js';

const WORKSPACE = '/workspace';
const CHUNK = 1024 * 1024;

export class WorkspaceTooLargeError extends KilnError {
  constructor(limitBytes: number) {
    super('WorkspaceTooLarge', 413, `the session's /workspace archive is larger than ${limitBytes} bytes, the most Kiln keeps for its template; remove files and retry`, { limitBytes });
  }
}

/**
 * /workspace as a tar, made by tar inside the sandbox as its user (executor files-service): it
 * cannot read past what the session itself reaches, and a symlink to /etc is archived as a
 * symlink. Refused past `maxBytes`, and checked (tar-guard.ts) so a stored archive always unpacks.
 */
export async function downloadWorkspace(agent: SessionAgent, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of agent.tarDownload(WORKSPACE)) {
    size += c.data.length;
    if (size > maxBytes) throw new WorkspaceTooLargeError(maxBytes);
    chunks.push(Buffer.from(c.data));
  }
  const tar = Buffer.concat(chunks, size);
  checkTar(tar);
  return tar;
}

/** Unpacks a checked archive into /workspace (tar inside the sandbox as its user, again). */
export async function uploadWorkspace(agent: SessionAgent, tar: Buffer): Promise<void> {
  checkTar(tar);
  await agent.upload('tar', WORKSPACE, chunksOf(tar));
}

/** An archive held in memory as the upload's body: views of it, CHUNK bytes each, no copy. */
export function chunksOf(tar: Buffer): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator]: () => {
      let at = 0;
      return {
        next: () => {
          const value = tar.subarray(at, at + CHUNK);
          at += CHUNK;
          return Promise.resolve(value.length > 0 ? { done: false, value } : { done: true, value: undefined });
        },
      };
    },
  };
}
