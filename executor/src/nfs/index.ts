/**
 * NFS export of session workspaces: an NFSv3 (RFC 1813) + MOUNT v3 server
 * on a single TCP port, with its own XDR and ONC RPC layers.
 *
 * Security model, in short:
 *  - a file handle is an HMAC-sealed (export, dev, ino) under a per-start
 *    secret; it only ever addresses inodes reached from its own export root;
 *  - the server never follows symlinks and resolves names relative to pinned
 *    directory fds (no path re-walks from "/"), see vfs.ts;
 *  - the allow-list is checked at MNT and again on every NFS call;
 *  - anyone allowed to mount acts as the export's owner: new files are
 *    chowned to the export's uid/gid, and setuid/setgid bits are stripped.
 */
export { NfsServer } from './server.js';
export type { ExportResolver, NfsExport, NfsLogger, NfsServerOptions } from './types.js';
