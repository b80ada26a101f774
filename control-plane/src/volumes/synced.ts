import { randomBytes } from 'node:crypto';
import type { VolumeMount } from '@kiln/proto/executor/sandboxes';
import type { Redis } from 'ioredis';
import type { SessionAgent } from '../agent/session-client.js';
import { KilnError } from '../errors.js';
import { log } from '../log.js';
import { checkTar } from '../sessions/tar-guard.js';
import { chunksOf } from '../sessions/workspace-archive.js';
import type { BlobStore } from '../storage/blobs.js';
import { TransferBudget } from './transfer-budget.js';

/**
 * Synced volumes: for executors that share no disk with each other (docker on other hosts). The
 * volume's content is a tar in the blob store, one per generation; the volume's Redis record
 * (owned by VolumeService, which this module serves) names the current one. A session's sandbox
 * gets a tmpfs of the volume's size (executor/src/sandbox/synced-volumes.ts), filled from the
 * current generation before the session is handed out, and packed back on demand, at hibernation
 * and at the session's end.
 *
 * Consistency: one read-write session at a time (the writer claim below), so generations form a
 * line; read-only sessions see the generation current at their create. A sync writes a new blob,
 * swaps the record's generation in one Lua step (only from the generation this session filled
 * from or last wrote), and only then deletes the old blob: a failed upload leaves the previous
 * generation whole.
 */

/**
 * The largest synced volume: its archive passes through the control plane's memory whole (the
 * blob store takes buffers) and its tmpfs is memory of the session's, so the bound is well below
 * KILN_VOLUME_MAX_MB's default. Larger data: a local volume, or files through the files API.
 */
export const SYNCED_VOLUME_MAX_MB = 1024;

/** An empty tar (two zero blocks): what a volume without a generation unpacks as. */
const EMPTY_TAR = Buffer.alloc(1024);
const MB = 1024 * 1024;
/** A sync may take this long, plus SYNC_MS_PER_MB per MB of the volume's size (a 1 GB one: about 3 min). */
const SYNC_BASE_MS = 60_000;
const SYNC_MS_PER_MB = 100;
/** A session counted as a writer with no record yet is a create in flight for this long (as users are: service.ts). */
const CREATING_GRACE_MS = 120_000;

/** What VolumeService keeps in its record for a synced volume. */
export interface SyncedState {
  /** 0: never synced (empty). */
  generation?: number;
  /** The blob of the current generation. */
  blob?: string;
  /** Bytes of that archive. */
  bytes?: number;
  syncedAt?: number;
}

export class VolumeTooLargeError extends KilnError {
  constructor(name: string, sizeMB: number, what: string) {
    super('VolumeTooLarge', 413, `volume "${name}" holds more than its ${sizeMB} MB (${what}); nothing was stored and the previous generation stays current. Remove files (sparse files count at their full length) and sync again`, { name, sizeMB });
  }
}

export class VolumeSyncStalledError extends KilnError {
  constructor(name: string, why: string) {
    super('VolumeSyncStalled', 504, `volume "${name}" could not be synced: ${why} (the tar packing it runs inside the sandbox, where its code can stop it); nothing was stored and the previous generation stays current`, { name });
  }
}

export class VolumeSyncConflictError extends KilnError {
  constructor(name: string, why: string) {
    super('VolumeSyncConflict', 409, `volume "${name}" could not be synced: ${why}`, { name });
  }
}

export class VolumeNotSyncedError extends KilnError {
  constructor(name: string, why: string) {
    super('VolumeNotSynced', 409, `volume "${name}" has nothing to sync: ${why}`, { name });
  }
}

/** Swaps the current generation if it is still the one the caller started from. KEYS: tenant hash. ARGV: name, id, from, to, blob, bytes, at. */
const SWAP_LUA = `
local writer = redis.call('GET', KEYS[2])
if (not writer) or string.sub(writer, 1, string.len(ARGV[8]) + 1) ~= ARGV[8] .. '|' then return {0, 'writer', ''} end
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {0, 'gone', ''} end
local v = cjson.decode(raw)
if v.id ~= ARGV[2] then return {0, 'gone', ''} end
if (v.generation or 0) ~= tonumber(ARGV[3]) then return {0, 'moved', ''} end
local old = v.blob or ''
v.generation = tonumber(ARGV[4])
v.blob = ARGV[5]
v.bytes = tonumber(ARGV[6])
v.syncedAt = tonumber(ARGV[7])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(v))
return {1, '', old}
`;

/** Takes the writer claim unless someone else holds it; answers the holder. KEYS: claim. ARGV: session|at, stale holder or ''. */
const CLAIM_LUA = `
local cur = redis.call('GET', KEYS[1])
if (not cur) or cur == ARGV[2] then redis.call('SET', KEYS[1], ARGV[1]) return '' end
return cur
`;

/** Drops the claim only if this session holds it. KEYS: claim. ARGV: session id. */
const RELEASE_LUA = `
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. '|' then redis.call('DEL', KEYS[1]) return 1 end
return 0
`;

/** The holder's session record exists: its time goes to 0 (no longer a create in flight). KEYS: claim. ARGV: session id. */
const CREATED_LUA = `
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. '|' then redis.call('SET', KEYS[1], ARGV[1] .. '|0') return 1 end
return 0
`;

type SwapFn = (key: string, claim: string, name: string, id: string, from: number, to: number, blob: string, bytes: number, at: number, sessionId: string) => Promise<[number, string, string]>;
type ClaimFn = (key: string, value: string, stale: string) => Promise<string>;
type ReleaseFn = (key: string, sessionId: string) => Promise<number>;

/** The volume as a synced mount needs it: the record's identity and state. */
export interface SyncedVolume extends SyncedState {
  id: string;
  name: string;
  tenant: string;
  sizeMB: number;
}

export class SyncedVolumes {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    readonly blobs: BlobStore,
    /** The tenant's volume hash (VolumeService's key). */
    private readonly recordsKey: (tenant: string) => string,
    private readonly sessions: { ended(ids: string[]): Promise<string[]>; known(id: string): Promise<boolean> },
    /** What archives in flight may hold of this replica's memory, all transfers together (KILN_VOLUME_TRANSFER_MEMORY_MB). */
    private readonly budget: TransferBudget = new TransferBudget(2048 * MB),
    /** A sync that gets no byte of its archive for this long is given up (KILN_VOLUME_SYNC_IDLE_MS; see syncOut). */
    private readonly syncIdleMs = 15_000,
  ) {
    redis.defineCommand('kilnVolumeSwap', { numberOfKeys: 2, lua: SWAP_LUA });
    redis.defineCommand('kilnVolumeClaim', { numberOfKeys: 1, lua: CLAIM_LUA });
    redis.defineCommand('kilnVolumeRelease', { numberOfKeys: 1, lua: RELEASE_LUA });
    redis.defineCommand('kilnVolumeClaimed', { numberOfKeys: 1, lua: CREATED_LUA });
  }

  private claimKey(volumeId: string): string {
    return `${this.prefix}:volwriter:${volumeId}`;
  }

  /** Every generation's blob of a volume lives in this folder. */
  folder(tenantKey: string, volumeId: string): string {
    return `volumes/${tenantKey}/${volumeId}`;
  }

  private cmd<T>(name: string): T {
    return (this.redis as unknown as Record<string, T>)[name] as T;
  }

  /**
   * Makes `sessionId` the one read-write session of a synced volume, or answers the session
   * that is (live, or a create in flight). A holder whose session ended or was lost without
   * letting go (its control plane died) is replaced.
   */
  async claimWriter(volumeId: string, sessionId: string): Promise<string | undefined> {
    const claim = this.cmd<ClaimFn>('kilnVolumeClaim');
    const key = this.claimKey(volumeId);
    const value = `${sessionId}|${Date.now()}`;
    for (let attempt = 0; attempt < 3; attempt++) {
      const holder = await claim.call(this.redis, key, value, '');
      if (holder === '') return undefined;
      const [holderId = '', at = '0'] = holder.split('|');
      if (holderId === sessionId) return undefined;
      const ended = (await this.sessions.ended([holderId])).length > 0;
      const creating = ended && Date.now() - Number(at) < CREATING_GRACE_MS && !(await this.sessions.known(holderId));
      if (!ended || creating) return holderId;
      // Replaced only if it is still that stale holder (compare and set).
      if ((await claim.call(this.redis, key, value, holder)) === '') return undefined;
    }
    return (await this.redis.get(key))?.split('|')[0] ?? 'unknown';
  }

  /**
   * The claiming session's record exists: from now on its record alone says whether it is live
   * (a holder whose record is gone is replaced at once, not after the create's grace).
   */
  async writerCreated(volumeId: string, sessionId: string): Promise<void> {
    await this.cmd<ReleaseFn>('kilnVolumeClaimed').call(this.redis, this.claimKey(volumeId), sessionId);
  }

  /** Lets go of the writer claim if `sessionId` holds it. */
  async releaseWriter(volumeId: string, sessionId: string): Promise<void> {
    await this.cmd<ReleaseFn>('kilnVolumeRelease').call(this.redis, this.claimKey(volumeId), sessionId);
  }

  async dropClaim(volumeId: string): Promise<void> {
    await this.redis.del(this.claimKey(volumeId));
  }

  /**
   * Unpacks the volume's current generation into its tmpfs in a freshly booted sandbox (tar
   * inside the sandbox as its user; a read-only mount is sealed by the executor after it).
   * Answers the generation filled. The blob may be retired between reading the record and
   * reading the blob (a sync moved on): read again.
   */
  async fill(agent: SessionAgent, mount: VolumeMount, current: () => Promise<SyncedVolume>): Promise<number> {
    for (let attempt = 0; ; attempt++) {
      const v = await current();
      // The archive's size is on record: that much is reserved before any of it is read, and a
      // stored blob larger than that is not this generation's (tampered with) and is refused.
      const size = v.blob ? (v.bytes ?? 0) : EMPTY_TAR.length;
      const release = await this.budget.reserve(v.tenant, size);
      try {
        const tar = v.blob ? await this.blobs.get(v.blob) : EMPTY_TAR;
        if (!tar) {
          if (attempt < 3) continue;
          throw new KilnError('VolumeArchiveMissing', 500, `volume "${v.name}" names generation ${v.generation ?? 0}, whose archive is missing from the blob store`, { name: v.name });
        }
        if (tar.length > size) throw new KilnError('VolumeArchiveInvalid', 500, `the archive of volume "${v.name}" is larger than its record says (${tar.length}, not ${size} bytes)`, { name: v.name });
        // Archive content is hostile (the blob store may have been written by someone else): checked
        // before any of it is unpacked, and unpacked by tar inside the sandbox as its user.
        checkTar(tar);
        await agent.upload('tar', mount.path, chunksOf(tar));
        return v.generation ?? 0;
      } finally {
        release();
      }
    }
  }

  /**
   * Packs the volume's tmpfs (tar inside the sandbox) and stores it as the next generation. The
   * archive may be at most twice the volume's size plus 1 MB while it streams in (tar headers; a
   * sparse file expands to its full length), and the files in it at most the volume's size.
   */
  async syncOut(agent: SessionAgent, mount: VolumeMount, current: () => Promise<SyncedVolume>, sessionId: string): Promise<SyncedVolume> {
    const v = await current();
    // Never more than the replica's whole transfer memory, whatever the volume's size.
    const limit = Math.min(archiveLimit(v.sizeMB), this.budget.bytes);
    const release = await this.budget.reserve(v.tenant, limit);
    try {
      // One buffer of the reserved size, filled as the archive streams in: the kernel commits
      // only the pages written, and nothing is copied again to join pieces.
      const into = Buffer.allocUnsafe(limit);
      let size = 0;
      const stalled = new AbortController();
      const stream = agent.tarDownload(mount.path, stalled.signal);
      // tar runs inside the sandbox, where its code can stop it (SIGSTOP) or starve it: a sync
      // with no byte for syncIdleMs, or longer than its size allows, is given up (the previous
      // generation stays), so neither a client's DELETE nor the reaper waits on hostile code.
      const deadline = Date.now() + SYNC_BASE_MS + v.sizeMB * SYNC_MS_PER_MB;
      for (;;) {
        const next = await withTimeout(stream.next(), Math.min(this.syncIdleMs, Math.max(1, deadline - Date.now())));
        if (next === TIMED_OUT) {
          // Not stream.return(): it would wait for the chunk that is not coming.
          stalled.abort();
          throw new VolumeSyncStalledError(v.name, Date.now() >= deadline ? 'it took longer than its size allows' : `no byte came for ${this.syncIdleMs / 1000} s`);
        }
        if (next.done) break;
        const c = next.value;
        if (size + c.data.length > limit) {
          await stream.return(undefined);
          throw new VolumeTooLargeError(v.name, v.sizeMB, `its archive passed ${limit} bytes`);
        }
        into.set(c.data, size);
        size += c.data.length;
      }
      return await this.store(v, mount, into.subarray(0, size), sessionId);
    } finally {
      release();
    }
  }

  /** Stores a packed archive as the volume's next generation, if its files fit the volume. */
  private async store(v: SyncedVolume, mount: VolumeMount, tar: Buffer, sessionId: string): Promise<SyncedVolume> {
    const size = tar.length;
    const content = contentBytes(tar);
    if (content > v.sizeMB * MB) throw new VolumeTooLargeError(v.name, v.sizeMB, `its files add up to ${content} bytes`);
    const from = v.generation ?? 0;
    const blob = `${this.folder(mount.tenantKey, v.id)}/${from + 1}-${randomBytes(6).toString('hex')}.tar`;
    await this.blobs.put(blob, tar);
    const at = Date.now();
    const [ok, why, old] = await this.cmd<SwapFn>('kilnVolumeSwap').call(this.redis, this.recordsKey(v.tenant), this.claimKey(v.id), v.name, v.id, from, from + 1, blob, size, at, sessionId);
    if (!ok) {
      await this.blobs.delete(blob).catch((err: unknown) => log('warn', 'could not delete a volume archive that lost its swap', { volumeId: v.id, blob, error: String(err) }));
      throw new VolumeSyncConflictError(v.name, why === 'gone' ? 'the volume was deleted' : why === 'writer' ? 'this session no longer holds the volume for writing (another session took it over)' : 'another sync moved the volume on meanwhile');
    }
    // The record names the new generation: the old blob is retired (a read-only create reading it
    // this instant finds it gone and reads the record again: fill).
    if (old) await this.blobs.delete(old).catch((err: unknown) => log('warn', 'could not delete a volume\'s previous archive', { volumeId: v.id, blob: old, error: String(err) }));
    return { ...v, generation: from + 1, blob, bytes: size, syncedAt: at };
  }
}

const TIMED_OUT = Symbol('timed out');

/** The promise's value, or TIMED_OUT after `ms` (the promise itself goes on). */
async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<typeof TIMED_OUT>((resolve) => (timer = setTimeout(() => resolve(TIMED_OUT), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** An archive of a volume of `sizeMB` is cut off past this (tar headers; a sparse file at its full length). */
function archiveLimit(sizeMB: number): number {
  return sizeMB * MB * 2 + MB;
}

/** Sum of the entries' data sizes (checkTar has walked the same headers; this refuses what it refuses). */
function contentBytes(tar: Buffer): number {
  checkTar(tar);
  let total = 0;
  for (let at = 0; at + 512 <= tar.length; ) {
    const h = tar.subarray(at, at + 512);
    if (h.every((b) => b === 0)) break;
    const field = h.subarray(124, 136);
    const size = field[0] !== undefined && field[0] & 0x80 ? Number(field.readBigUInt64BE(4)) : parseInt(field.toString('ascii').replace(/\0.*$/, '').trim() || '0', 8);
    const type = String.fromCharCode(h[156] as number);
    if (type === '0' || type === '\0' || type === '7') total += size;
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return total;
}
