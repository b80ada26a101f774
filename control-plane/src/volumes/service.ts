import { createHash, randomBytes } from 'node:crypto';
import { MAX_VOLUMES_PER_SANDBOX, volumePathProblem } from '@kiln/executor/volumes';
import type { VolumeMount } from '@kiln/proto/executor/sandboxes';
import type { Redis } from 'ioredis';
import { KilnError, ValidationError } from '../errors.js';
import { log } from '../log.js';
import type { Keys } from '../store/keys.js';
import type { PlatformKind } from '../templates/template.js';
import type { Principal } from '../tenancy/principal.js';
import type { BlobStore } from '../storage/blobs.js';
import type { SessionAgent } from '../agent/session-client.js';
import { deleteVolumeOnHost } from './host.js';
import { TransferBudget } from './transfer-budget.js';
import { SYNCED_VOLUME_MAX_MB, SyncedVolumes, VolumeNotSyncedError, type SyncedState, type SyncedVolume } from './synced.js';

/**
 * `local`: an ext4 image on the executors' host, live-shared by every session that mounts it
 * (local platform only). `synced`: a tar per generation in the blob store, copied into each
 * session's sandbox at its create and back at sync (volumes/synced.ts); single writer.
 */
export type VolumeMode = 'local' | 'synced';

/** A named volume: this record in Redis, its ext4 image on the host (executor/src/sandbox/volumes.ts). */
export interface VolumeRecord extends SyncedState {
  id: string;
  tenant: string;
  name: string;
  sizeMB: number;
  createdAt: number;
  /** Absent on records from before modes: local. */
  mode?: VolumeMode;
}

export interface VolumeView {
  id: string;
  name: string;
  tenant: string;
  sizeMB: number;
  createdAt: string;
  mode: VolumeMode;
  /** Synced volumes: the current generation (0: never synced), its archive's bytes and when it was stored. */
  generation?: number;
  bytes?: number;
  syncedAt?: string;
}

/** What a session create asks for. */
export interface VolumeMountInput {
  name: string;
  path: string;
  readOnly?: boolean;
}

export interface VolumeSettings {
  /** Host directory of every volume (the local platform's executors get it as KILN_VOLUME_DIR). */
  hostDir: string;
  /** The largest volume (KILN_VOLUME_MAX_MB). */
  maxSizeMB: number;
  /** Each tenant's total of volume sizes (KILN_QUOTA_VOLUME_MB). */
  quotaMB: number;
  /** Each tenant's number of volumes (KILN_QUOTA_VOLUMES). */
  maxPerTenant: number;
  /** The platform of a template that names none (KILN_PLATFORM). */
  defaultPlatform: PlatformKind;
  /**
   * A tenant's count and size limits with its administrator's overrides (tenancy/quotas.ts, admin
   * API `quotas.volumes` / `quotas.volumeMB`); absent: quotaMB and maxPerTenant for every tenant.
   */
  limits?: (tenant: string) => Promise<{ volumes: number; volumeMB: number }>;
  /** Memory synced volumes' archives in flight may hold, MB, and how long one waits for it (KILN_VOLUME_TRANSFER_MEMORY_MB, _WAIT_MS); 2048 and 30 s if absent. */
  transferMemoryMB?: number;
  transferWaitMs?: number;
  /** A sync with no byte of its archive for this long is given up (KILN_VOLUME_SYNC_IDLE_MS); 15 s if absent. */
  syncIdleMs?: number;
}

export const VOLUME_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
/**
 * A session id counted as a volume's user but with no record yet is a create in flight (its
 * sandbox booting): DELETE treats it as a user for this long.
 */
const CREATING_GRACE_MS = 120_000;

export class VolumeNotFoundError extends KilnError {
  constructor(name: string) {
    super('VolumeNotFound', 404, `volume "${name.slice(0, 100)}" does not exist`, { name: name.slice(0, 100) });
  }
}

export class VolumeExistsError extends KilnError {
  constructor(name: string) {
    super('VolumeExists', 409, `a volume named "${name}" exists already; pick another name, or use an Idempotency-Key to make a create safe to repeat`, { name });
  }
}

export class VolumeInUseError extends KilnError {
  constructor(name: string, sessions: string[], why = 'end them first') {
    super('VolumeInUse', 409, `volume "${name}" is mounted by ${sessions.length} live session(s) (${sessions.slice(0, 5).join(', ')}); ${why}`, { name, sessions: sessions.slice(0, 20) });
  }
}

export class VolumesUnsupportedOnPlatformError extends KilnError {
  constructor(platform: string, template: string, volume: string, mode: VolumeMode) {
    const why =
      mode === 'local'
        ? `volume "${volume}" is a local volume (an ext4 image on the local platform's host), which only local templates mount; create a volume with "mode": "synced" for ${platform} templates`
        : `synced volumes are not offered on the ${platform} platform`;
    super('VolumesUnsupportedOnPlatform', 400, `template "${template}" runs on the ${platform} platform: ${why}`, { platform, template, volume, mode });
  }
}

/** As tenancy's QuotaExceededError (429 QuotaExceeded, `data.quota`), for volume count and size. */
export class VolumeQuotaError extends KilnError {
  constructor(tenant: string, quota: 'volumes' | 'volumeMB', limit: number, used: number) {
    const what = quota === 'volumes' ? `${used} of ${limit} volumes` : `${used} MB of ${limit} MB of volumes (the new one would pass it)`;
    super('QuotaExceeded', 429, `tenant "${tenant}" is at its ${quota} quota: ${what}; delete a volume, or ask an administrator to raise the tenant's quotas.${quota} (admin API; default KILN_QUOTA_${quota === 'volumes' ? 'VOLUMES' : 'VOLUME_MB'})`, {
      quota,
      limit,
      used,
      retryAfterSeconds: 60,
    });
  }
}

/** Checks the count, the total size and the name in one step, then records the volume. */
const CREATE_LUA = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return {0, 'exists', 0} end
local all = redis.call('HVALS', KEYS[1])
if #all >= tonumber(ARGV[4]) then return {0, 'volumes', #all} end
local used = 0
for _, v in ipairs(all) do used = used + cjson.decode(v).sizeMB end
if used + tonumber(ARGV[3]) > tonumber(ARGV[5]) then return {0, 'volumeMB', used} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return {1, '', 0}
`;

type CreateFn = (key: string, name: string, json: string, sizeMB: number, maxCount: number, maxMB: number) => Promise<[number, string, number]>;

/** The directory name of a tenant on the host: never the tenant id itself, which may hold anything. */
export function tenantKey(tenant: string): string {
  return createHash('sha256').update(tenant).digest('hex').slice(0, 32);
}

const view = (v: VolumeRecord): VolumeView => ({
  id: v.id,
  name: v.name,
  tenant: v.tenant,
  sizeMB: v.sizeMB,
  createdAt: new Date(v.createdAt).toISOString(),
  mode: v.mode ?? 'local',
  ...(v.mode === 'synced' ? { generation: v.generation ?? 0, bytes: v.bytes ?? 0, ...(v.syncedAt ? { syncedAt: new Date(v.syncedAt).toISOString() } : {}) } : {}),
});

/** Platforms whose templates mount synced volumes: every one (the executor needs nothing of its host). */
const SYNCED_PLATFORMS: ReadonlySet<PlatformKind> = new Set(['local', 'docker', 'kubernetes']);

/**
 * Named volumes per tenant: records and who mounts them in Redis (the one owner of both), data in
 * an ext4 image per volume on the executors' host. Sessions name them at create; the session
 * service asks `mountsFor` for what to put in the sandbox's boot request.
 */
export class VolumeService {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    readonly settings: VolumeSettings,
    /** Whether a session id is gone or lost (sessions/records.ts `ended`). */
    private readonly sessions: { ended(ids: string[]): Promise<string[]> },
    /** Where synced volumes' archives live; absent: only local volumes. */
    blobs?: BlobStore,
  ) {
    redis.defineCommand('kilnCreateVolume', { numberOfKeys: 1, lua: CREATE_LUA });
    this.synced = blobs ? new SyncedVolumes(redis, keys.prefix, blobs, (t) => this.tenantKey(t), { ended: (ids) => sessions.ended(ids), known: (id) => this.sessionKnown(id) }, new TransferBudget((settings.transferMemoryMB ?? 2048) * 1024 * 1024, settings.transferWaitMs), settings.syncIdleMs) : undefined;
  }

  private readonly synced: SyncedVolumes | undefined;

  /** A volume mode's default: local on the local platform, synced on the others. */
  private defaultMode(): VolumeMode {
    return this.settings.defaultPlatform === 'local' || !this.synced ? 'local' : 'synced';
  }

  private tenantKey(tenant: string): string {
    return `${this.keys.prefix}:vols:${tenant}`;
  }

  private usersKey(id: string): string {
    return `${this.keys.prefix}:volusers:${id}`;
  }

  async create(input: { name: string; sizeMB: number; mode?: VolumeMode | undefined }, who: Principal): Promise<VolumeView> {
    const mode = input.mode ?? this.defaultMode();
    if (mode !== 'local' && mode !== 'synced') throw new ValidationError(`mode must be "local" or "synced"; got ${JSON.stringify(String(mode).slice(0, 20))}`, { field: 'mode' });
    if (mode === 'synced' && !this.synced) throw new ValidationError('mode "synced": this deployment has no blob store for volumes', { field: 'mode' });
    if (mode === 'synced' && input.sizeMB > SYNCED_VOLUME_MAX_MB) {
      throw new ValidationError(`sizeMB: a synced volume holds at most ${SYNCED_VOLUME_MAX_MB} MB (its archive passes through the control plane's memory); got ${input.sizeMB}. Use a local volume for more`, { field: 'sizeMB', maxSizeMB: SYNCED_VOLUME_MAX_MB });
    }
    if (!VOLUME_NAME.test(input.name)) throw new ValidationError(`name must match ${VOLUME_NAME}; got ${JSON.stringify(input.name.slice(0, 100))}`);
    if (!Number.isInteger(input.sizeMB) || input.sizeMB < 1 || input.sizeMB > this.settings.maxSizeMB) {
      throw new ValidationError(`sizeMB must be a whole number from 1 to ${this.settings.maxSizeMB} (KILN_VOLUME_MAX_MB); got ${input.sizeMB}`, { maxSizeMB: this.settings.maxSizeMB });
    }
    const record: VolumeRecord = { id: `vol_${randomBytes(16).toString('hex')}`, tenant: who.tenant, name: input.name, sizeMB: input.sizeMB, createdAt: Date.now(), mode, ...(mode === 'synced' ? { generation: 0 } : {}) };
    const limits = await this.limitsOf(who.tenant);
    const create = (this.redis as unknown as Record<'kilnCreateVolume', CreateFn>).kilnCreateVolume;
    const [ok, why, used] = await create.call(this.redis, this.tenantKey(who.tenant), record.name, JSON.stringify(record), record.sizeMB, limits.volumes, limits.volumeMB);
    if (!ok) {
      if (why === 'exists') throw new VolumeExistsError(record.name);
      const quota = why === 'volumes' ? 'volumes' : 'volumeMB';
      throw new VolumeQuotaError(who.tenant, quota, limits[quota], Number(used));
    }
    return view(record);
  }

  private async limitsOf(tenant: string): Promise<{ volumes: number; volumeMB: number }> {
    return this.settings.limits ? await this.settings.limits(tenant) : { volumes: this.settings.maxPerTenant, volumeMB: this.settings.quotaMB };
  }

  async list(who: Principal): Promise<VolumeView[]> {
    const all = await this.redis.hvals(this.tenantKey(who.tenant));
    return all.map((raw) => JSON.parse(raw) as VolumeRecord).sort((a, b) => a.createdAt - b.createdAt).map(view);
  }

  async get(name: string, who: Principal): Promise<VolumeView> {
    return view(await this.record(name, who.tenant));
  }

  private async record(name: string, tenant: string): Promise<VolumeRecord> {
    const raw = VOLUME_NAME.test(name) ? await this.redis.hget(this.tenantKey(tenant), name) : null;
    if (!raw) throw new VolumeNotFoundError(name);
    return JSON.parse(raw) as VolumeRecord;
  }

  /**
   * 409 VolumeInUse while a session that mounts it is live (paused and hibernated ones too: they
   * mount it again on resume) or being created; else the record goes, then the image.
   */
  async delete(name: string, who: Principal): Promise<void> {
    const v = await this.record(name, who.tenant);
    const users = await this.liveUsers(v.id);
    if (users.length > 0) throw new VolumeInUseError(v.name, users);
    // Only the caller whose HDEL removed the record deletes the image.
    if ((await this.redis.hdel(this.tenantKey(v.tenant), v.name)) !== 1) throw new VolumeNotFoundError(name);
    // A session create that read the record just before the HDEL has counted itself as a user
    // by now (mountsFor counts first, then checks the record): the volume stays.
    const late = await this.liveUsers(v.id);
    if (late.length > 0) {
      await this.redis.hset(this.tenantKey(v.tenant), v.name, JSON.stringify(v));
      throw new VolumeInUseError(v.name, late);
    }
    await this.redis.del(this.usersKey(v.id));
    if (v.mode === 'synced') {
      await this.synced?.dropClaim(v.id);
      await this.synced?.blobs.deleteFolder(this.synced.folder(tenantKey(v.tenant), v.id)).catch((err: unknown) => {
        log('warn', 'could not delete a synced volume\'s archives', { volumeId: v.id, error: String(err) });
      });
      return;
    }
    await deleteVolumeOnHost(this.settings.hostDir, tenantKey(v.tenant), v.id).catch((err: unknown) => {
      // The record is gone, so no session can mount it again; what is left on disk is logged.
      log('warn', 'could not delete a volume\'s image', { volumeId: v.id, error: String(err) });
    });
  }

  /** Session ids counted as users of a volume that are live or still being created; the rest are dropped. */
  private async liveUsers(id: string): Promise<string[]> {
    const entries = await this.redis.zrange(this.usersKey(id), 0, -1, 'WITHSCORES');
    const added = new Map<string, number>();
    for (let i = 0; i < entries.length; i += 2) added.set(entries[i] as string, Number(entries[i + 1]));
    const ended = new Set(await this.sessions.ended([...added.keys()]));
    const live: string[] = [];
    const stale: string[] = [];
    for (const [sid, at] of added) {
      if (!ended.has(sid)) live.push(sid);
      // No record: ended, unless it is a create whose sandbox is still booting (score: when it
      // started; `created` sets it to 0 once the session's record exists).
      else if (at > 0 && Date.now() - at < CREATING_GRACE_MS && !(await this.sessionKnown(sid))) live.push(sid);
      else stale.push(sid);
    }
    if (stale.length > 0) await this.redis.zrem(this.usersKey(id), ...stale);
    return live;
  }

  private async sessionKnown(id: string): Promise<boolean> {
    return (await this.redis.exists(this.keys.session(id))) === 1;
  }

  /**
   * Checks a session's volume list and records the session as a user of each volume (before its
   * sandbox boots, so a DELETE meanwhile answers 409); what the executor's boot request carries.
   */
  async mountsFor(sessionId: string, input: readonly VolumeMountInput[], who: Principal, template: { name: string; platform?: PlatformKind | undefined }): Promise<VolumeMount[]> {
    if (input.length === 0) return [];
    const platform = template.platform ?? this.settings.defaultPlatform;
    if (input.length > MAX_VOLUMES_PER_SANDBOX) throw new ValidationError(`volumes: at most ${MAX_VOLUMES_PER_SANDBOX} per session; got ${input.length}`);
    const seen = new Set<string>();
    const paths: string[] = [];
    const mounts: VolumeMount[] = [];
    for (const [i, m] of input.entries()) {
      const problem = volumePathProblem(m.path);
      if (problem) throw new ValidationError(`volumes[${i}].path ${JSON.stringify(String(m.path).slice(0, 100))} ${problem}`, { field: `volumes[${i}].path` });
      for (const p of paths) {
        if (p === m.path || p.startsWith(`${m.path}/`) || m.path.startsWith(`${p}/`)) throw new ValidationError(`volumes[${i}].path ${m.path} overlaps ${p}: each volume needs a place of its own`, { field: `volumes[${i}].path` });
      }
      paths.push(m.path);
      if (seen.has(m.name)) throw new ValidationError(`volumes[${i}]: volume "${m.name}" is listed twice`, { field: `volumes[${i}].name` });
      seen.add(m.name);
      const v = await this.record(m.name, who.tenant);
      const mode = v.mode ?? 'local';
      if (mode === 'local' ? platform !== 'local' : !SYNCED_PLATFORMS.has(platform)) throw new VolumesUnsupportedOnPlatformError(platform, template.name, v.name, mode);
      mounts.push({ tenantKey: tenantKey(v.tenant), volumeId: v.id, sizeMb: v.sizeMB, path: m.path, readOnly: m.readOnly ?? false, synced: mode === 'synced' });
    }
    // Synced volumes have one read-write session at a time (synced.ts): claimed before anything else.
    for (const [i, m] of mounts.entries()) {
      if (!m.synced || m.readOnly || !this.synced) continue;
      let holder: string | undefined;
      try {
        holder = await this.synced.claimWriter(m.volumeId, sessionId);
      } catch (err) {
        // Redis failed mid-way: the claims taken for the mounts before this one go back at once.
        await this.forget(sessionId, mounts.slice(0, i)).catch(() => undefined);
        throw err;
      }
      if (holder !== undefined) {
        await this.forget(sessionId, mounts.slice(0, i));
        throw new VolumeInUseError(input[i]?.name ?? '', [holder], 'a synced volume has one read-write session at a time; mount it readOnly, or end that session (it syncs at its end)');
      }
    }
    const now = Date.now();
    const tx = this.redis.multi();
    for (const m of mounts) tx.zadd(this.usersKey(m.volumeId), now, sessionId);
    await tx.exec();
    // Counted first, then checked: a DELETE that removed a record meanwhile either sees this
    // session and puts the record back, or has removed it for good and this create stops here.
    for (const [i, m] of mounts.entries()) {
      const still = await this.redis.hget(this.tenantKey(who.tenant), input[i]?.name ?? '');
      if (!still || (JSON.parse(still) as VolumeRecord).id !== m.volumeId) {
        await this.forget(sessionId, mounts);
        throw new VolumeNotFoundError(input[i]?.name ?? '');
      }
    }
    return mounts;
  }

  /** The session's record exists: from now on its record alone says whether it is live. */
  async created(sessionId: string, mounts: readonly VolumeMount[]): Promise<void> {
    if (mounts.length === 0) return;
    const tx = this.redis.multi();
    for (const m of mounts) tx.zadd(this.usersKey(m.volumeId), 'XX', 0, sessionId);
    await tx.exec();
    for (const m of mounts) if (m.synced && !m.readOnly) await this.synced?.writerCreated(m.volumeId, sessionId);
  }

  /** A create that failed before its session existed: it no longer counts as a user. */
  async forget(sessionId: string, mounts: readonly VolumeMount[]): Promise<void> {
    if (mounts.length === 0) return;
    const tx = this.redis.multi();
    for (const m of mounts) tx.zrem(this.usersKey(m.volumeId), sessionId);
    await tx.exec();
    await this.released(sessionId, mounts);
  }

  /** A session ended (after its last sync): its writer claims go. Its user entries go with its record (liveUsers). */
  async released(sessionId: string, mounts: readonly VolumeMount[]): Promise<void> {
    for (const m of mounts) if (m.synced && !m.readOnly) await this.synced?.releaseWriter(m.volumeId, sessionId);
  }

  /** The record of a synced volume by id, as a mount names it (404 once deleted). */
  private async syncedRecord(name: string, tenant: string, id: string): Promise<SyncedVolume> {
    const v = await this.record(name, tenant);
    if (v.id !== id || v.mode !== 'synced') throw new VolumeNotFoundError(name);
    return v;
  }

  /** Fills a new sandbox's synced volumes from their current generations (sessions call this before the session is handed out). */
  async fill(agent: SessionAgent, tenant: string, names: readonly string[], mounts: readonly VolumeMount[]): Promise<void> {
    for (const [i, m] of mounts.entries()) {
      if (!m.synced || !this.synced) continue;
      const name = names[i] ?? '';
      await this.synced.fill(agent, m, () => this.syncedRecord(name, tenant, m.volumeId));
    }
  }

  /** Stores a session's read-write synced volume as its next generation. */
  async syncOut(agent: SessionAgent, tenant: string, name: string, mount: VolumeMount, sessionId: string): Promise<VolumeView> {
    if (!mount.synced || !this.synced) throw new VolumeNotSyncedError(name, 'it is a local volume, live-shared by its sessions: every write is in it already');
    if (mount.readOnly) throw new VolumeNotSyncedError(name, 'this session mounts it read-only');
    const next = await this.synced.syncOut(agent, mount, () => this.syncedRecord(name, tenant, mount.volumeId), sessionId);
    return view({ ...next, createdAt: (await this.record(name, tenant)).createdAt, mode: 'synced' });
  }
}
