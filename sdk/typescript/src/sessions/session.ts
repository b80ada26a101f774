import type { RequestOptions, Transport } from '../http.js';
import type { SessionInfo, SessionTransition, SessionUsage, SnapshotInfo } from '../schema.js';
import { Commands } from './commands.js';
import { Files } from './files.js';
import { Pty } from './pty.js';

/**
 * A sandbox leased to this client (E2B's `Sandbox`): `commands`, `files`, `pty`. It lives until
 * `kill()`, its timeout, or its idle timeout (any call through it is activity).
 */
export class Session {
  readonly commands: Commands;
  readonly files: Files;
  readonly pty: Pty;
  private readonly base: string;

  constructor(
    private readonly http: Transport,
    /** The session as Kiln last reported it. */
    public info: SessionInfo,
  ) {
    this.base = `/api/v1/sessions/${encodeURIComponent(info.id)}`;
    this.commands = new Commands(http, this.base);
    this.files = new Files(http, this.base);
    this.pty = new Pty(http, info.id);
  }

  get id(): string {
    return this.info.id;
  }

  /** Reads the session again (status, expiry). */
  async refresh(opts: RequestOptions = {}): Promise<SessionInfo> {
    this.info = await this.http.json<SessionInfo>('GET', this.base, { signal: opts.signal });
    return this.info;
  }

  /** Records activity; with `timeoutMs`, the session now ends that long from now. */
  async keepAlive(opts: RequestOptions & { timeoutMs?: number } = {}): Promise<SessionInfo> {
    this.info = await this.http.json<SessionInfo>('POST', `${this.base}/keepalive`, { json: opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }, signal: opts.signal });
    return this.info;
  }

  /**
   * Freezes every process of the session (memory, open files and terminals kept, no CPU); paused
   * time does not count against its timeout. Any later call through it resumes it, unless it was
   * created with `autoResume: false` (then calls throw SessionPausedError until `resume()`).
   */
  async pause(opts: RequestOptions = {}): Promise<SessionTransition> {
    return this.transition('pause', opts);
  }

  /** Resumes it: `resumeType` is `thawed` (processes kept) or `restored` (from hibernation: files only). */
  async resume(opts: RequestOptions = {}): Promise<SessionTransition> {
    return this.transition('resume', opts);
  }

  /** Saves its /workspace to the blob store and frees its sandbox; it stays paused, processes end. */
  async hibernate(opts: RequestOptions = {}): Promise<SessionTransition> {
    return this.transition('hibernate', opts);
  }

  /** CPU time, memory and processes of its sandbox, read without resuming it. */
  async usage(opts: RequestOptions = {}): Promise<SessionUsage> {
    return this.http.json<SessionUsage>('GET', `${this.base}/usage`, { signal: opts.signal });
  }

  /** Saves its /workspace as a named snapshot (start sessions from it with `sessions.createFromSnapshot`). */
  async snapshot(opts: RequestOptions & { name?: string } = {}): Promise<SnapshotInfo> {
    return this.http.json<SnapshotInfo>('POST', `${this.base}/snapshots`, { json: opts.name === undefined ? {} : { name: opts.name }, signal: opts.signal });
  }

  /** `count` (1–10) new sessions, each with a copy of its /workspace as it is now; all or nothing. */
  async fork(opts: RequestOptions & { count?: number; timeoutMs?: number; metadata?: Record<string, string> } = {}): Promise<Session[]> {
    const { signal, ...body } = opts;
    const made = await this.http.json<{ sessions: SessionInfo[] }>('POST', `${this.base}/fork`, { json: body, signal });
    return made.sessions.map((s) => new Session(this.http, s));
  }

  private async transition(step: 'pause' | 'resume' | 'hibernate', opts: RequestOptions): Promise<SessionTransition> {
    const r = await this.http.json<SessionTransition>('POST', `${this.base}/${step}`, { signal: opts.signal });
    // The answer is the session (plus resumeType and tookMs): kept as its latest state.
    this.info = r;
    return r;
  }

  /** Ends the session, killing its processes. */
  async kill(opts: RequestOptions = {}): Promise<void> {
    await this.http.call('DELETE', this.base, { signal: opts.signal });
  }
}
