/**
 * Clients that hold the server without sending anything useful (api/connection-guard.ts,
 * api/upload-slots.ts), attacked: one address opening more sockets than its share, a body that
 * stops moving (with and without a key: the first bytes of a JSON body, the first bytes of a large
 * upload), and one tenant's pile of slow uploads. Each must be cut or refused while other clients
 * and tenants keep being served, and a cut upload must leave nothing behind.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

const ALPHA = 'slow-alpha-key-0123456789abcdef000';
const BETA = 'slow-beta-key-0123456789abcdef0000';
const ADMIN = 'slow-admin-key-0123456789abcdef000';
// Above what this file's own fetches from 127.0.0.1 keep open (undici pools them); the flood comes from 127.0.0.2.
const PER_CLIENT = 40;
// Wide against the chunk intervals below (a tenth of it and less), so a loaded machine that
// stalls a process for a moment does not make a moving body look stopped.
const IDLE_MS = 3000;
const UPLOADS = 2;

let k: TestKiln;
let port = 0;
const as = (key: string) => ({ authorization: `Bearer ${key}` });
const sessions: Record<string, string> = {};

beforeAll(async () => {
  k = await startTestKiln({
    templates: { nodejs: { pool: { minIdle: 2 } }, python: null, shell: null, provided: null },
    env: {
      KILN_API_KEYS: `alpha:${ALPHA},beta:${BETA}`,
      KILN_ADMIN_API_KEYS: ADMIN,
      KILN_MAX_CONNECTIONS_PER_CLIENT: String(PER_CLIENT),
      KILN_BODY_IDLE_TIMEOUT_MS: String(IDLE_MS),
      KILN_MAX_UPLOADS_PER_TENANT: String(UPLOADS),
    },
  });
  port = Number(new URL(k.url).port);
  expect((await k.call('POST', '/api/v1/admin/tenants', { id: 'beta' }, as(ADMIN))).status).toBe(201);
  for (const [name, key] of [['alpha', ALPHA], ['beta', BETA]] as const) {
    const s = await k.call('POST', '/api/v1/sessions', { template: 'nodejs' }, as(key));
    expect(s.status, JSON.stringify(s.body)).toBe(201);
    sessions[name] = s.body.id as string;
  }
}, 120_000);
afterAll(async () => {
  if (sessions.alpha) await k?.call('DELETE', `/api/v1/sessions/${sessions.alpha}`, undefined, as(ALPHA));
  if (sessions.beta) await k?.call('DELETE', `/api/v1/sessions/${sessions.beta}`, undefined, as(BETA));
  await k?.stop();
});

/** A raw socket to Kiln from `from` (any 127/8 address is this machine's loopback). */
function open(from: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, localAddress: from }, () => resolve(s));
    s.once('error', reject);
  });
}
/** Resolves when the server has closed `s` (or the test's bound ends the wait). */
const closed = (s: Socket): Promise<void> => new Promise((resolve) => (s.destroyed || s.closed ? resolve() : s.once('close', () => resolve())));
/** Everything the server wrote to `s` until it closed it. */
function collect(s: Socket): Promise<string> {
  let out = '';
  s.on('data', (d: Buffer) => (out += d.toString()));
  s.on('error', () => {});
  return closed(s).then(() => out);
}
const health = (from?: string): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, ...(from ? { localAddress: from } : {}) }, () => s.write(`GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`));
    let out = '';
    s.on('data', (d: Buffer) => (out += d.toString()));
    s.on('end', () => resolve(Number(/^HTTP\/1\.1 (\d+)/.exec(out)?.[1] ?? 0)));
    s.on('error', reject);
  });

describe('slow and greedy clients', () => {
  it('closes the sockets one address opens past its share; other addresses are served, and the address again once it lets go', async () => {
    const held: Socket[] = [];
    for (let i = 0; i < PER_CLIENT + 4; i++) {
      const s = await open('127.0.0.2');
      s.on('error', () => {});
      // Half a request line: a socket held open without ever finishing its headers.
      s.write('GET /hea');
      held.push(s);
    }
    // The ones past the share are closed by the server on accept; the first PER_CLIENT stay.
    await Promise.all(held.slice(PER_CLIENT).map(closed));
    expect(held.slice(0, PER_CLIENT).every((s) => !s.destroyed && !s.closed)).toBe(true);
    expect(await health('127.0.0.3')).toBe(200);
    for (const s of held) s.destroy();
    await Promise.all(held.map(closed));
    await expect.poll(() => health('127.0.0.2'), { timeout: 20_000 }).toBe(200);
  }, 60_000);

  it('cuts a JSON body that stops moving, without a key and with one', async () => {
    for (const auth of ['', `Authorization: Bearer ${ALPHA}\r\n`]) {
      const s = await open('127.0.0.4');
      const out = collect(s);
      s.write(`POST /api/v1/sessions HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${auth}Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n{"templ`);
      // Nothing more is sent: the server closes the socket after IDLE_MS without a byte.
      await out;
      expect(s.destroyed || s.closed).toBe(true);
    }
    const listed = await k.call('GET', '/api/v1/sessions', undefined, as(ALPHA));
    expect((listed.body as { sessions: unknown[] }).sessions).toHaveLength(1);
  }, 60_000);

  it('cuts an upload whose body stops moving and leaves no partial file; one that keeps moving completes', async () => {
    const s = await open('127.0.0.5');
    const out = collect(s);
    s.write(`PUT /api/v1/sessions/${sessions.alpha}/files?path=stalled.bin HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${ALPHA}\r\nContent-Length: 1000000\r\n\r\n`);
    s.write(Buffer.alloc(64 * 1024, 7));
    await out;
    const stat = await k.call('GET', `/api/v1/sessions/${sessions.alpha}/files/stat?path=stalled.bin`, undefined, as(ALPHA));
    expect(stat.status).toBe(404);
    const list = await k.call('GET', `/api/v1/sessions/${sessions.alpha}/files/list?path=.`, undefined, as(ALPHA));
    expect(JSON.stringify(list.body)).not.toContain('stalled');

    // A slow body that never pauses for IDLE_MS is not cut: a chunk every IDLE_MS / 12.
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        for (let i = 0; i < 12; i++) {
          controller.enqueue(Buffer.alloc(1024, i));
          await new Promise((r) => setTimeout(r, IDLE_MS / 12));
        }
        controller.close();
      },
    });
    const put = await fetch(`${k.url}/api/v1/sessions/${sessions.alpha}/files?path=steady.bin`, { method: 'PUT', body, headers: as(ALPHA), duplex: 'half' });
    expect([put.status, ((await put.json()) as { size: number }).size]).toEqual([200, 12 * 1024]);
  }, 60_000);

  it('refuses a tenant more uploads at once than its share (429 TooManyUploads); another tenant is unaffected; a slot comes back', async () => {
    // UPLOADS uploads that hold their slot: a body that keeps trickling, never finishing.
    const trickles: Array<{ stop: () => void; done: Promise<Response> }> = [];
    for (let i = 0; i < UPLOADS; i++) {
      let stop = (): void => {};
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          const t = setInterval(() => controller.enqueue(Buffer.from('x')), IDLE_MS / 10);
          stop = () => {
            clearInterval(t);
            controller.close();
          };
        },
      });
      const done = fetch(`${k.url}/api/v1/sessions/${sessions.alpha}/files?path=held-${i}.txt`, { method: 'PUT', body, headers: as(ALPHA), duplex: 'half' });
      trickles.push({ stop: () => stop(), done });
    }
    // Until both hold a slot, a third may still get in; once they do, it is refused.
    await expect
      .poll(async () => {
        const r = await fetch(`${k.url}/api/v1/sessions/${sessions.alpha}/files?path=third.txt`, { method: 'PUT', body: 'third', headers: as(ALPHA) });
        return [r.status, r.status === 429 ? ((await r.json()) as { error: { code: string } }).error.code : await r.text(), r.headers.get('retry-after')];
      }, { timeout: 30_000 })
      .toEqual([429, 'TooManyUploads', '1']);
    const other = await fetch(`${k.url}/api/v1/sessions/${sessions.beta}/files?path=beta.txt`, { method: 'PUT', body: 'beta', headers: as(BETA) });
    expect(other.status).toBe(200);
    trickles[0]!.stop();
    expect((await trickles[0]!.done).status).toBe(200);
    const again = await fetch(`${k.url}/api/v1/sessions/${sessions.alpha}/files?path=fourth.txt`, { method: 'PUT', body: 'fourth', headers: as(ALPHA) });
    expect(again.status).toBe(200);
    trickles[1]!.stop();
    expect((await trickles[1]!.done).status).toBe(200);
  }, 90_000);
});
