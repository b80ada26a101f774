import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Redis } from 'ioredis';
import { KilnError, NotFoundError, ValidationError } from '../errors.js';
import type { Keys } from '../store/keys.js';
import { DEFAULT_TENANT, principal, SCOPES, TENANT_ID, TENANT_SCOPES, type Principal, type Scope } from './principal.js';
import type { Sealer } from './sealer.js';

/**
 * Keys made over the admin API: `kiln_<key id>_<secret>`. The key id is not secret (logs, the
 * SigV4 access key id, the admin API name it); the whole key is.
 */
const STORED_KEY = /^kiln_([0-9a-f]{16})_[A-Za-z0-9_-]{43}$/;
/** How long a replica trusts a key it looked up; a key deleted on another replica works that much longer there. */
const CACHE_MS = 5_000;
const CACHE_MAX = 10_000;

export interface TenantRecord {
  id: string;
  description: string;
  createdAt: number;
  /** Admin overrides of the default quotas (tenancy/quotas.ts), by quota name. */
  quotas: Record<string, number>;
}

/** A stored key as the admin API shows it: never the key, nor its hash. */
export interface KeyView {
  keyId: string;
  tenant: string;
  scopes: Scope[];
  description: string;
  createdAt: number;
}

interface StoredKey extends KeyView {
  /** sha256 of the whole key, hex: what a bearer key is checked against. */
  hash: string;
  /** The whole key sealed (Sealer): SigV4 needs it as the HMAC key. */
  sealed: string;
}

/** A key from KILN_API_KEYS or KILN_ADMIN_API_KEYS. */
interface EnvKey {
  key: string;
  digest: Buffer;
  principal: Principal;
}

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();

/**
 * `KILN_API_KEYS` entries are `key` or `tenant:key`; each untagged key is a tenant of its own
 * (`key-<8 hex of its hash>`). Administrator keys belong to the default tenant unless tagged.
 */
export function envKeys(apiKeys: readonly string[], adminKeys: readonly string[]): EnvKey[] {
  const admin = new Set(adminKeys);
  const out: EnvKey[] = [];
  for (const entry of new Set([...apiKeys, ...adminKeys])) {
    const tagged = /^([a-z0-9][a-z0-9-]{0,62}):(.{16,})$/.exec(entry);
    if (tagged && !TENANT_ID.test(tagged[1] as string)) throw new Error(`KILN_API_KEYS: "${tagged[1] as string}" cannot be a tenant id (twelve digits read as an AWS account id)`);
    const key = tagged ? (tagged[2] as string) : entry;
    const hex = sha256(key).toString('hex');
    const isAdmin = admin.has(entry);
    const tenant = tagged ? (tagged[1] as string) : isAdmin ? DEFAULT_TENANT : `key-${hex.slice(0, 8)}`;
    out.push({ key, digest: sha256(key), principal: principal(tenant, `env-${hex.slice(0, 12)}`, isAdmin ? SCOPES : TENANT_SCOPES) });
  }
  return out;
}

export class TenantExistsError extends KilnError {
  constructor(id: string) {
    super('TenantExists', 409, `tenant "${id}" exists`, { tenant: id });
  }
}

/**
 * Who a key is: keys from the environment (in memory) and keys made over the admin API (in
 * Redis, hashed, with the key sealed for SigV4). The one owner of tenants and stored keys.
 */
export class Keyring {
  private readonly cache = new Map<string, { principal: Principal | undefined; until: number }>();

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly env: readonly EnvKey[],
    private readonly sealer: Sealer,
  ) {}

  /** True when keys are configured in the environment: then every request must present one. */
  get required(): boolean {
    return this.env.length > 0;
  }

  /** The principal a presented key names (bearer or x-api-key; a terminal's ticket stands for one), or undefined. */
  async authenticate(presented: string): Promise<Principal | undefined> {
    const m = STORED_KEY.exec(presented);
    if (!m) return this.envPrincipal(presented);
    const digest = sha256(presented);
    const cacheKey = digest.toString('hex');
    const hit = this.cache.get(cacheKey);
    if (hit && hit.until > Date.now()) return hit.principal;
    const stored = await this.stored(m[1] as string);
    const ok = stored !== undefined && timingSafeEqual(Buffer.from(stored.hash, 'hex'), digest);
    const found = ok ? principal(stored.tenant, stored.keyId, stored.scopes) : undefined;
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    this.cache.set(cacheKey, { principal: found, until: Date.now() + CACHE_MS });
    return found;
  }

  /**
   * The secrets a SigV4 request with this access key id may be signed with, each with the
   * principal it stands for: the one stored key of that id, or the environment key of that id;
   * for any other id, every environment key (clients configured before key ids existed).
   */
  async sigv4Secrets(accessKeyId: string): Promise<Array<{ secret: string; principal: Principal }>> {
    const id = /^(?:kiln_)?([0-9a-f]{16})$/.exec(accessKeyId)?.[1];
    if (id) {
      const stored = await this.stored(id);
      const secret = stored && this.sealer.open(stored.sealed, stored.keyId);
      return stored && secret ? [{ secret, principal: principal(stored.tenant, stored.keyId, stored.scopes) }] : [];
    }
    const named = this.env.filter((k) => k.principal.keyId === accessKeyId);
    return (named.length ? named : this.env).map((k) => ({ secret: k.key, principal: k.principal }));
  }

  private envPrincipal(presented: string): Principal | undefined {
    const p = sha256(presented);
    let found: Principal | undefined;
    // Every key compared, in constant time each: how long this takes says nothing of which matched.
    for (const k of this.env) if (timingSafeEqual(k.digest, p)) found = k.principal;
    return found;
  }

  private async stored(keyId: string): Promise<StoredKey | undefined> {
    const raw = await this.redis.hget(this.keys.apiKeys, keyId);
    return raw ? (JSON.parse(raw) as StoredKey) : undefined;
  }

  // --- tenants and keys, for the admin API and CLI ---

  async createTenant(input: { id: string; description?: string; quotas?: Record<string, number> }): Promise<TenantRecord> {
    if (!TENANT_ID.test(input.id)) throw new ValidationError('tenant id: lowercase letters, digits and dashes, up to 63 characters', { tenant: input.id });
    const record: TenantRecord = { id: input.id, description: input.description ?? '', createdAt: Date.now(), quotas: input.quotas ?? {} };
    if (!(await this.redis.hsetnx(this.keys.tenants, input.id, JSON.stringify(record)))) throw new TenantExistsError(input.id);
    return record;
  }

  async updateTenant(id: string, change: { description?: string; quotas?: Record<string, number> }): Promise<TenantRecord> {
    const cur = await this.tenant(id);
    const next: TenantRecord = { ...cur, ...(change.description !== undefined ? { description: change.description } : {}), ...(change.quotas ? { quotas: change.quotas } : {}) };
    await this.redis.hset(this.keys.tenants, id, JSON.stringify(next));
    return next;
  }

  /** A tenant made over the admin API; tenants named only by environment keys have no record. */
  async findTenant(id: string): Promise<TenantRecord | undefined> {
    const raw = await this.redis.hget(this.keys.tenants, id);
    return raw ? (JSON.parse(raw) as TenantRecord) : undefined;
  }

  async tenant(id: string): Promise<TenantRecord> {
    const t = await this.findTenant(id);
    if (!t) throw new NotFoundError('Tenant', id);
    return t;
  }

  async tenants(): Promise<TenantRecord[]> {
    const all = Object.values(await this.redis.hgetall(this.keys.tenants)).map((raw) => JSON.parse(raw) as TenantRecord);
    return all.sort((a, b) => a.id.localeCompare(b.id));
  }

  /**
   * Deletes a tenant and its keys (they stop working at once here, within CACHE_MS elsewhere).
   * What it owns stays, reachable by administrators, until they delete it.
   */
  async deleteTenant(id: string): Promise<void> {
    await this.tenant(id);
    const keys = await this.listKeys(id);
    const tx = this.redis.multi().hdel(this.keys.tenants, id);
    for (const k of keys) tx.hdel(this.keys.apiKeys, k.keyId);
    await tx.exec();
    this.cache.clear();
  }

  /** Makes a key for a tenant; the key is in the answer and nowhere else, ever. */
  async createKey(tenant: string, input: { scopes?: Scope[]; description?: string }): Promise<KeyView & { key: string }> {
    await this.tenant(tenant);
    const keyId = randomBytes(8).toString('hex');
    const key = `kiln_${keyId}_${randomBytes(32).toString('base64url')}`;
    const view: KeyView = { keyId, tenant, scopes: [...new Set(input.scopes ?? TENANT_SCOPES)], description: input.description ?? '', createdAt: Date.now() };
    const stored: StoredKey = { ...view, hash: sha256(key).toString('hex'), sealed: this.sealer.seal(key, keyId) };
    await this.redis.hset(this.keys.apiKeys, keyId, JSON.stringify(stored));
    return { ...view, key };
  }

  async listKeys(tenant: string): Promise<KeyView[]> {
    const all = Object.values(await this.redis.hgetall(this.keys.apiKeys)).map((raw) => JSON.parse(raw) as StoredKey);
    return all.filter((k) => k.tenant === tenant).map(({ keyId, tenant: t, scopes, description, createdAt }) => ({ keyId, tenant: t, scopes, description, createdAt }));
  }

  async deleteKey(tenant: string, keyId: string): Promise<void> {
    const stored = await this.stored(keyId);
    if (!stored || stored.tenant !== tenant) throw new NotFoundError('Key', keyId);
    await this.redis.hdel(this.keys.apiKeys, keyId);
    this.cache.clear();
  }
}
