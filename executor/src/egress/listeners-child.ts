/**
 * Runs inside a sandbox's network namespace (started by listeners.ts through nsenter, as the
 * namespace's owner, before anything runs in the sandbox) and never in the sandbox itself.
 * It makes every IPv4 address local to the namespace's loopback (so a connection to any
 * address lands on a listener here with its destination intact as the local address), opens
 * the egress listeners (TCP on each allowed port, DNS on UDP 53), hands them to the executor
 * over the IPC channel and exits: the sockets live on in the namespace, held by the executor.
 */
import { execFileSync } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server } from 'node:net';

const ports = (JSON.parse(process.argv[2] ?? '[]') as unknown[]).filter((p): p is number => Number.isInteger(p) && (p as number) > 0 && (p as number) < 65536);

function fail(err: unknown): never {
  process.stderr.write(`egress listeners: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  execFileSync('ip', ['link', 'set', 'lo', 'up']);
  execFileSync('ip', ['route', 'add', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', 'local']);
  const servers = await Promise.all(
    ports.map(
      (port) =>
        new Promise<Server>((resolve, reject) => {
          const s = createServer();
          s.once('error', reject);
          s.listen({ port, host: '0.0.0.0', backlog: 256 }, () => resolve(s));
        }),
    ),
  );
  const udp = await new Promise<UdpSocket>((resolve, reject) => {
    const u = createSocket('udp4');
    u.once('error', reject);
    u.bind(53, '0.0.0.0', () => resolve(u));
  });
  const send = (msg: unknown, handle: Server | UdpSocket): Promise<void> =>
    new Promise((resolve, reject) => (process.send as NonNullable<typeof process.send>)(msg, handle, {}, (err) => (err ? reject(err) : resolve())));
  for (const [i, s] of servers.entries()) await send({ tcp: ports[i] }, s);
  await send({ udp: 53 }, udp);
  process.exit(0);
}

main().catch(fail);
