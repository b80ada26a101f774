import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import { promisify } from 'node:util';
import type { Socket } from 'node:net';

const run = promisify(execFile);

import { CA_FILES } from './ca-env.js';

/** Leaf certificates kept per executor; past this the cache starts over (each is one openssl run). */
const MAX_LEAVES = 1024;
const HOST = /^[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$/;

/**
 * TLS interception for secrets that opt in (`https`): the proxy ends the sandbox's TLS with a
 * certificate for the very name it connected to, issued by the deployment's egress CA, and opens
 * its own TLS to the real host, which it verifies against the host's trusted CAs (plus
 * KILN_EGRESS_UPSTREAM_CA). The CA key stays in this process (read from a file the sandbox has
 * no path to); the sandbox gets only the certificate. One leaf key serves every leaf.
 */
export class TlsInterceptor {
  private readonly leaves = new Map<string, Promise<SecureContext>>();

  private constructor(
    private readonly caCertPath: string,
    private readonly caKeyPath: string,
    private readonly caPem: string,
    private readonly leafKeyPath: string,
    private readonly leafKey: string,
    /** What upstream certificates are checked against. */
    readonly upstreamCa: string[],
  ) {}

  /**
   * Loads the CA, makes this executor's leaf key (in `workDir`, 0700) and writes the sandbox's
   * copies of the certificate and the bundle into `etcDir`.
   */
  static async open(opts: { caCert: string; caKey: string; upstreamCa?: string | undefined; workDir: string; etcDir: string }): Promise<TlsInterceptor> {
    const caPem = await readFile(opts.caCert, 'utf8');
    await readFile(opts.caKey); // readable by the executor, or fail at start rather than at the first request
    await mkdir(opts.workDir, { recursive: true, mode: 0o700 });
    await chmod(opts.workDir, 0o700);
    const leafKeyPath = join(opts.workDir, 'leaf.key');
    await run('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', leafKeyPath]);
    await chmod(leafKeyPath, 0o600);
    const system = existsSync('/etc/ssl/certs/ca-certificates.crt') ? await readFile('/etc/ssl/certs/ca-certificates.crt', 'utf8') : rootCertificates.join('\n');
    await mkdir(opts.etcDir, { recursive: true });
    await writeFile(join(opts.etcDir, CA_FILES.cert), caPem, { mode: 0o644 });
    await writeFile(join(opts.etcDir, CA_FILES.bundle), `${system.trimEnd()}\n${caPem}`, { mode: 0o644 });
    const extra = opts.upstreamCa ? [await readFile(opts.upstreamCa, 'utf8')] : [];
    return new TlsInterceptor(opts.caCert, opts.caKey, caPem, leafKeyPath, await readFile(leafKeyPath, 'utf8'), [...rootCertificates, ...extra]);
  }

  /** The server-side context for `host` (an allowed, validated name), issued once and cached. */
  context(host: string): Promise<SecureContext> {
    if (!HOST.test(host)) return Promise.reject(new Error(`not a host name Kiln issues certificates for: ${host.slice(0, 80)}`));
    let ctx = this.leaves.get(host);
    if (!ctx) {
      if (this.leaves.size >= MAX_LEAVES) this.leaves.clear();
      ctx = this.issue(host);
      this.leaves.set(host, ctx);
      // A failed issue is not cached: the next connection tries again.
      ctx.catch(() => this.leaves.delete(host));
    }
    return ctx;
  }

  private async issue(host: string): Promise<SecureContext> {
    const { stdout } = await run('openssl', [
      'req', '-new', '-x509', '-key', this.leafKeyPath, '-CA', this.caCertPath, '-CAkey', this.caKeyPath,
      '-subj', `/CN=${host}`, '-days', '30', '-set_serial', `0x${randomBytes(16).toString('hex')}`,
      '-addext', `subjectAltName=DNS:${host}`, '-addext', 'basicConstraints=critical,CA:FALSE', '-addext', 'extendedKeyUsage=serverAuth',
    ]);
    return createSecureContext({ key: this.leafKey, cert: `${stdout}${this.caPem}` });
  }
}

/**
 * A stream over `socket` that first gives back `first` (the ClientHello the proxy already read
 * to decide), for a TLS server socket to start from. TLSSocket over a plain Duplex reads through
 * it, not the socket's handle, so the replayed bytes are seen.
 */
export function replayed(socket: Socket, first: Buffer): Duplex {
  const d = new Duplex({
    read: () => void socket.resume(),
    write: (chunk: Buffer, _enc, cb) => void socket.write(chunk, cb),
    final: (cb) => {
      socket.end();
      cb();
    },
    destroy: (err, cb) => {
      socket.destroy();
      cb(err);
    },
  });
  d.push(first);
  socket.on('data', (b: Buffer) => {
    if (!d.push(b)) socket.pause();
  });
  socket.on('end', () => d.push(null));
  socket.on('close', () => d.destroy());
  return d;
}
