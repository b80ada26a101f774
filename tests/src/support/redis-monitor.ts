import { connect } from 'node:net';

/**
 * Redis's MONITOR stream on a socket of its own, parsed line by line: every command any client
 * (or a script) runs, as its arguments. A raw connection, not ioredis's monitor(), whose
 * connection can take a MONITOR line for the answer to a command it is still waiting for under
 * load ("Command queue state error"). Resolves once Redis has said OK, so nothing run after
 * is missed.
 */
export async function monitorRedis(socketPath: string): Promise<{ seen: string[][]; stop(): void }> {
  const seen: string[][] = [];
  const socket = connect(socketPath);
  let buffered = '';
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      let nl: number;
      while ((nl = buffered.indexOf('\r\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 2);
        if (line === '+OK') resolve();
        else if (line.startsWith('-')) reject(new Error(`MONITOR refused: ${line}`));
        else if (line.startsWith('+')) seen.push(argsOf(line));
      }
    });
    socket.write('MONITOR\r\n');
  });
  return { seen, stop: () => socket.destroy() };
}

/** The quoted arguments of one MONITOR line, unescaped (\" \\ \n \r \t \xNN). */
function argsOf(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/"((?:[^"\\]|\\.)*)"/g)) {
    out.push((m[1] ?? '').replace(/\\(x[0-9a-fA-F]{2}|.)/g, (_s, e: string) => (e.length === 3 ? String.fromCharCode(parseInt(e.slice(1), 16)) : e === 'n' ? '\n' : e === 'r' ? '\r' : e === 't' ? '\t' : e)));
  }
  return out;
}
