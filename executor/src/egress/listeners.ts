import { spawn } from 'node:child_process';
import type { Socket as UdpSocket } from 'node:dgram';
import type { Server } from 'node:net';
import { fileURLToPath } from 'node:url';

const CHILD = fileURLToPath(new URL('./listeners-child.js', import.meta.url));
const START_TIMEOUT_MS = 5_000;

export interface NetnsListeners {
  tcp: Map<number, Server>;
  udp: UdpSocket;
}

/**
 * Opens the egress listeners inside the network namespace of the process `pid` (a sandbox held
 * before its first exec) and returns them, living in that namespace but served by this process.
 * Root joins only the network namespace; a non-root executor joins the sandbox's user namespace
 * first and keeps its capabilities there (nsenter --keep-caps, as network.ts does for routes).
 */
export function openListeners(pid: number, ports: readonly number[], nsenterPath = 'nsenter'): Promise<NetnsListeners> {
  const join = process.getuid?.() === 0 ? ['-n'] : ['-U', '-n', '--preserve-credentials', '--keep-caps'];
  const child = spawn(nsenterPath, ['-t', String(pid), ...join, '--', process.execPath, CHILD, JSON.stringify(ports)], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 4096) stderr += d;
  });
  const tcp = new Map<number, Server>();
  let udp: UdpSocket | undefined;
  return new Promise<NetnsListeners>((resolve, reject) => {
    const closeAll = (): void => {
      for (const s of tcp.values()) s.close();
      udp?.close();
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      closeAll();
      reject(new Error(`egress listeners not open within ${START_TIMEOUT_MS} ms`));
    }, START_TIMEOUT_MS);
    child.on('message', (msg: { tcp?: number; udp?: number }, handle: unknown) => {
      if (msg.tcp !== undefined) tcp.set(msg.tcp, handle as Server);
      else if (msg.udp !== undefined) udp = handle as UdpSocket;
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`nsenter could not start: ${err.message}`));
    });
    // 'close', not 'exit': by then every message (and handle) the child sent has arrived.
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0 && udp && tcp.size === ports.length) resolve({ tcp, udp });
      else {
        closeAll();
        reject(new Error(`egress listeners failed (${signal ?? `status ${code}`}): ${stderr.trim().slice(-500)}`));
      }
    });
  });
}
