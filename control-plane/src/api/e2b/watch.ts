import { randomUUID } from 'node:crypto';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { FileInfo } from '@kiln/proto/executor/files';
import { EventType, type FilesystemEventSchema } from '@kiln/proto/e2b/filesystem/filesystem_pb';
import type { SessionAgent } from '../../agent/session-client.js';
import { KilnError } from '../../errors.js';
import { walk } from './entries.js';

export type FsEvent = MessageInitShape<typeof FilesystemEventSchema>;
type Snapshot = Map<string, { type: string; size: number; modifiedAtMs: number }>;

/** How often WatchDir looks again. Kiln's executor has no change notification; this is the latency. */
export const WATCH_POLL_MS = 200;
/** Polling watchers (CreateWatcher) per control-plane replica, and how long an unused one lives. */
const MAX_WATCHERS = 1000;
const WATCHER_IDLE_MS = 10 * 60_000;

/**
 * Watches a directory by comparing listings: what appeared is CREATE, what went is REMOVE, a
 * changed size or modification time is WRITE. Host-side listings never follow a link (the
 * executor's walk), so a watch cannot look outside the workspace. Changes undone between two
 * looks are not seen.
 */
export class DirWatch {
  private last: Snapshot | undefined;

  constructor(
    private readonly agent: SessionAgent,
    private readonly dir: string,
    private readonly recursive: boolean,
  ) {}

  private async snapshot(): Promise<Snapshot> {
    const entries: FileInfo[] = await walk(this.agent, this.dir, this.recursive ? Number.MAX_SAFE_INTEGER : 1);
    return new Map(entries.map((e) => [e.path, { type: e.type, size: e.size, modifiedAtMs: e.modifiedAtMs }]));
  }

  /** Takes the first listing (the watch starts here; a missing directory fails now). */
  async start(): Promise<void> {
    this.last = await this.snapshot();
  }

  /** What changed since the last look. */
  async changes(): Promise<FsEvent[]> {
    const before = this.last ?? (await this.snapshot());
    const now = await this.snapshot();
    this.last = now;
    const name = (path: string): string => path.slice(this.dir.length + 1);
    const events: FsEvent[] = [];
    for (const [path, e] of now) {
      const old = before.get(path);
      if (!old || old.type !== e.type) events.push({ name: name(path), type: EventType.CREATE });
      else if (old.size !== e.size || old.modifiedAtMs !== e.modifiedAtMs) events.push({ name: name(path), type: EventType.WRITE });
    }
    for (const path of before.keys()) if (!now.has(path)) events.push({ name: name(path), type: EventType.REMOVE });
    return events;
  }
}

export class WatcherNotFoundError extends KilnError {
  constructor(id: string) {
    super('WatcherNotFound', 404, `no watcher "${id.slice(0, 100)}" on this sandbox (it was removed, expired after ${WATCHER_IDLE_MS / 60_000} minutes unused, or lives on another control-plane replica)`, { watcherId: id.slice(0, 100) });
  }
}

export class TooManyWatchersError extends KilnError {
  constructor() {
    super('TooManyWatchers', 429, `this control plane holds ${MAX_WATCHERS} watchers already; remove the ones you no longer use`, { limit: MAX_WATCHERS }, true);
  }
}

/**
 * The polling watchers of CreateWatcher / GetWatcherEvents / RemoveWatcher, in this replica's
 * memory (bounded in number, dropped when unused): each belongs to one session, and only a
 * request with that session's access token reaches it.
 */
export class Watchers {
  private readonly byId = new Map<string, { sessionId: string; watch: DirWatch; usedAt: number }>();

  async create(sessionId: string, watch: DirWatch): Promise<string> {
    this.expire();
    if (this.byId.size >= MAX_WATCHERS) throw new TooManyWatchersError();
    await watch.start();
    const id = randomUUID();
    this.byId.set(id, { sessionId, watch, usedAt: Date.now() });
    return id;
  }

  get(sessionId: string, id: string): DirWatch {
    const w = this.byId.get(id);
    if (!w || w.sessionId !== sessionId) throw new WatcherNotFoundError(id);
    w.usedAt = Date.now();
    return w.watch;
  }

  remove(sessionId: string, id: string): void {
    this.get(sessionId, id);
    this.byId.delete(id);
  }

  private expire(now = Date.now()): void {
    for (const [id, w] of this.byId) if (now - w.usedAt > WATCHER_IDLE_MS) this.byId.delete(id);
  }
}
