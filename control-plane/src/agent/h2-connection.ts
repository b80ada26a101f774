import { connect, type ClientHttp2Session, type ClientSessionOptions } from 'node:http2';

/**
 * One HTTP/2 connection to an executor, opened on first use and again after it closed or got
 * GOAWAY (the executor is stopping). It does not keep the process alive when idle. While
 * `busy()` says calls are in flight it is pinged every `intervalMs`: one that does not answer in
 * `timeoutMs` (a network partition, a hung executor) is destroyed, which fails its calls
 * (UNAVAILABLE) instead of holding each to its deadline. A connection error fails the calls on
 * it (their 'close'); nothing else is waiting for it. Shared by the unary channel (Invoke) and
 * the file streams, each with a connection of its own.
 */
export class H2Connection {
  private session: ClientHttp2Session | undefined;

  constructor(
    private readonly address: string,
    private readonly options: ClientSessionOptions,
    private readonly keepalive: { intervalMs: number; timeoutMs: number },
    private readonly busy: () => boolean,
    /** Runs on each new connection once it is up (window sizes). */
    private readonly onConnect?: (session: ClientHttp2Session) => void,
  ) {}

  /** The open connection, or a new one. */
  get(): ClientHttp2Session {
    const current = this.session;
    if (current && !current.closed && !current.destroyed) return current;
    const session = connect(`http://${this.address}`, this.options);
    const up = this.onConnect;
    if (up) session.once('connect', () => up(session));
    session.on('error', () => undefined);
    const forget = (): void => {
      if (this.session === session) this.session = undefined;
    };
    session.on('close', forget);
    session.on('goaway', forget);
    const pinger = setInterval(() => this.ping(session), this.keepalive.intervalMs).unref();
    session.on('close', () => clearInterval(pinger));
    session.unref();
    this.session = session;
    return session;
  }

  close(): void {
    this.session?.close();
    this.session = undefined;
  }

  private ping(session: ClientHttp2Session): void {
    if (!this.busy() || session.destroyed) return;
    const timer = setTimeout(() => session.destroy(), this.keepalive.timeoutMs).unref();
    const sent = session.ping((err) => {
      clearTimeout(timer);
      if (err) session.destroy();
    });
    if (!sent) clearTimeout(timer);
  }
}
