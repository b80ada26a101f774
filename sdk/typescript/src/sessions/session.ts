import type { RequestOptions, Transport } from '../http.js';
import type { SessionInfo } from '../schema.js';
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

  /** Ends the session, killing its processes. */
  async kill(opts: RequestOptions = {}): Promise<void> {
    await this.http.call('DELETE', this.base, { signal: opts.signal });
  }
}
