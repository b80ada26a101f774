import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { NotFoundError, TemplateExistsError, UnknownTemplateError } from '../errors.js';
import { log } from '../log.js';
import type { Keys } from '../store/keys.js';
import { templateSchema, withPlatform, type Template } from './template.js';

export class TemplateFileError extends Error {
  constructor(file: string, detail: string) {
    super(`template file ${file}: ${detail}`);
    this.name = 'TemplateFileError';
  }
}

/** Reads every `*.json` in the templates directory; a bad file stops start-up with its name. */
export async function loadTemplateFiles(dir: string): Promise<Template[]> {
  const out: Template[] = [];
  for (const name of (await readdir(dir)).filter((n) => n.endsWith('.json')).sort()) {
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(join(dir, name), 'utf8'));
    } catch (err) {
      throw new TemplateFileError(name, (err as Error).message);
    }
    const parsed = templateSchema.safeParse(raw);
    if (!parsed.success) throw new TemplateFileError(name, parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
    out.push(withPlatform(parsed.data));
  }
  return out;
}

export type TemplateChange = { kind: 'added' | 'updated'; template: Template } | { kind: 'removed'; name: string };

const digest = (t: Template): string => createHash('sha256').update(JSON.stringify(t)).digest('hex').slice(0, 16);

/**
 * Templates by name, stored in Redis (one hash of JSON) so every replica agrees. Reads
 * (`get/has/all/names`) are served from an in-memory copy, because they sit on every
 * request's path; the copy is reloaded when the version counter that every write bumps
 * changes (checked every `refreshMs`, and at once after this replica's own writes).
 * Listeners hear about templates added, changed or removed, whichever replica changed them.
 */
export class TemplateRegistry {
  private byName = new Map<string, Template>();
  private version = '';
  private timer: NodeJS.Timeout | undefined;
  private readonly listeners: Array<(change: TemplateChange) => void> = [];

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  /**
   * Stores the templates read from files. A file's template is written when it is new, or
   * when the file changed since it was last seeded (the operator edited it); otherwise the
   * stored copy wins, so changes made through the API survive restarts.
   */
  async seed(files: Template[]): Promise<void> {
    const { redis, keys } = this.store();
    const seeds = await redis.hgetall(keys.templateSeeds);
    let changed = false;
    for (const t of files) {
      const d = digest(t);
      if (seeds[t.name] === d) continue;
      await redis.multi().hset(keys.templates, t.name, JSON.stringify(t)).hset(keys.templateSeeds, t.name, d).exec();
      changed = true;
    }
    if (changed) await redis.incr(keys.templatesVersion);
    await this.refresh();
  }

  /** Reloads from Redis when the version moved; emits a change for each difference. */
  async refresh(): Promise<void> {
    const { redis, keys } = this.store();
    const version = (await redis.get(keys.templatesVersion)) ?? '0';
    if (version === this.version) return;
    const raw = await redis.hgetall(keys.templates);
    const next = new Map<string, Template>();
    for (const [name, json] of Object.entries(raw)) {
      // Validated again on every load: a template stored by an older version (or by hand) with
      // values past today's bounds is skipped and reported, never started or crash-looped on.
      let value: unknown;
      try {
        value = JSON.parse(json);
      } catch {
        value = undefined;
      }
      const parsed = templateSchema.safeParse(value);
      if (parsed.success) next.set(name, withPlatform(parsed.data));
      else log('warn', 'ignoring a stored template that does not validate', { template: name, problem: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ').slice(0, 500) });
    }
    const before = this.byName;
    this.byName = next;
    this.version = version;
    for (const [name, t] of next) {
      const old = before.get(name);
      if (!old) this.emit({ kind: 'added', template: t });
      else if (digest(old) !== digest(t)) this.emit({ kind: 'updated', template: t });
    }
    for (const name of before.keys()) if (!next.has(name)) this.emit({ kind: 'removed', name });
  }

  /** Polls the version counter; other replicas' changes show up within `refreshMs`. */
  start(refreshMs = 1000): void {
    this.timer = setInterval(() => {
      this.refresh().catch((err: unknown) => log('debug', 'template refresh failed; kept the last copy', { error: String(err) }));
    }, refreshMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  onChange(listener: (change: TemplateChange) => void): void {
    this.listeners.push(listener);
  }

  async create(t: Template): Promise<Template> {
    const { redis, keys } = this.store();
    if ((await redis.hsetnx(keys.templates, t.name, JSON.stringify(t))) === 0) throw new TemplateExistsError(t.name);
    await redis.incr(keys.templatesVersion);
    await this.refresh();
    return t;
  }

  async update(t: Template): Promise<Template> {
    const { redis, keys } = this.store();
    if (!(await redis.hexists(keys.templates, t.name))) throw new NotFoundError('Template', t.name);
    await redis.multi().hset(keys.templates, t.name, JSON.stringify(t)).incr(keys.templatesVersion).exec();
    await this.refresh();
    return t;
  }

  /** Removes a template; the caller checked it is not in use. */
  async remove(name: string): Promise<void> {
    const { redis, keys } = this.store();
    if ((await redis.hdel(keys.templates, name)) === 0) throw new NotFoundError('Template', name);
    await redis.incr(keys.templatesVersion);
    await this.refresh();
  }

  get(name: string): Template {
    const t = this.byName.get(name);
    if (!t) throw new UnknownTemplateError(name, this.names());
    return t;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  all(): Template[] {
    return [...this.byName.values()];
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  private emit(change: TemplateChange): void {
    for (const l of this.listeners) {
      try {
        l(change);
      } catch (err) {
        log('warn', 'template change listener failed', { change: change.kind, error: String(err) });
      }
    }
  }

  private store(): { redis: Redis; keys: Keys } {
    return { redis: this.redis, keys: this.keys };
  }
}
