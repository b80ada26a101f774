import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inSession, startTestKiln, type TestKiln } from '../support/kiln.js';

/**
 * Kiln's own REST for background processes, with what E2B's process API needed: shell command
 * lines, tags, stdin kept open and written later, reattaching to the output, `exitCode: null`
 * while running, and 404 ProcessNotFound for a pid or tag the session never had.
 */
let k: TestKiln;
beforeAll(async () => {
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 1 } }, python: null, shell: null, provided: null } });
});
afterAll(async () => {
  await k?.stop();
});

/** The events of an SSE response, once it ends. */
async function sseEvents(res: Response): Promise<{ event: string; data: any }[]> {
  const text = await res.text();
  return text
    .split('\n\n')
    .filter((block) => block.includes('event:'))
    .map((block) => {
      const event = /^event: (.*)$/m.exec(block)?.[1] ?? '';
      const data = /^data: (.*)$/m.exec(block)?.[1] ?? 'null';
      return { event, data: JSON.parse(data) };
    });
}

describe('background processes over REST', () => {
  it('runs a shell line by tag with stdin kept open, reattaches to its output, and ends it with EOF', async () => {
    await inSession(k, async (id) => {
      const started = await k.call('POST', `/api/v1/sessions/${id}/processes`, { command: 'read line; echo "got $line"; cat >&2', shell: true, tag: 'reader', keepStdin: true });
      expect(started.status, JSON.stringify(started.body)).toBe(201);
      expect(started.body).toMatchObject({ tag: 'reader', command: '/bin/bash', args: ['-l', '-c', 'read line; echo "got $line"; cat >&2'], running: true, exitCode: null });
      const attached = fetch(`${k.url}/api/v1/sessions/${id}/processes/tag:reader/stream`);
      // The stream answers once it is attached; what follows is written after.
      const res = await attached;
      expect(res.status).toBe(200);
      const wrote = await k.call('POST', `/api/v1/sessions/${id}/processes/tag:reader/stdin`, { data: 'hello\n' });
      expect(wrote.status, JSON.stringify(wrote.body)).toBe(200);
      expect((await k.call('POST', `/api/v1/sessions/${id}/processes/${started.body.pid}/stdin`, { data: Buffer.from('to stderr\n').toString('base64'), base64: true, close: true })).status).toBe(200);
      const events = await sseEvents(res);
      expect(events.filter((e) => e.event === 'stdout').map((e) => e.data.data).join('')).toBe('got hello\n');
      expect(events.filter((e) => e.event === 'stderr').map((e) => e.data.data).join('')).toBe('to stderr\n');
      expect(events.at(-1)).toMatchObject({ event: 'exit', data: { exitCode: 0, signal: '' } });
      const list = await k.call('GET', `/api/v1/sessions/${id}/processes`);
      expect(list.body.processes.find((p: { pid: number }) => p.pid === started.body.pid)).toMatchObject({ running: false, exitCode: 0, stdout: 'got hello\n' });
      // Reattaching to a process that has exited answers its end at once.
      const late = await sseEvents(await fetch(`${k.url}/api/v1/sessions/${id}/processes/tag:reader/stream`));
      expect(late).toEqual([{ event: 'exit', data: expect.objectContaining({ exitCode: 0 }) }]);
    });
  });

  it('answers 404 ProcessNotFound, 400 for a closed stdin, a second running tag and bad input', async () => {
    await inSession(k, async (id) => {
      const missing = await k.call('POST', `/api/v1/sessions/${id}/processes/4242/stdin`, { data: 'x' });
      expect(missing.status).toBe(404);
      expect(missing.body.error.code).toBe('ProcessNotFound');
      expect((await fetch(`${k.url}/api/v1/sessions/${id}/processes/tag:nobody/stream`)).status).toBe(404);
      const sleeper = await k.call('POST', `/api/v1/sessions/${id}/processes`, { command: 'sleep', args: ['600'], tag: 'sleeper' });
      expect(sleeper.body.exitCode).toBeNull();
      const closed = await k.call('POST', `/api/v1/sessions/${id}/processes/tag:sleeper/stdin`, { data: 'x' });
      expect(closed.status).toBe(400);
      expect(closed.body.error.message).toMatch(/stdin .* is closed/);
      const twice = await k.call('POST', `/api/v1/sessions/${id}/processes`, { command: 'sleep 1', shell: true, tag: 'sleeper' });
      expect(twice.status).toBe(400);
      expect((await k.call('POST', `/api/v1/sessions/${id}/processes`, { command: 'echo', shell: true, args: ['x'] })).status).toBe(400);
      expect((await k.call('POST', `/api/v1/sessions/${id}/processes/not-a-pid/stdin`, { data: 'x' })).status).toBe(400);
      const killed = await k.call('POST', `/api/v1/sessions/${id}/processes/${sleeper.body.pid}/signal`, { signal: 'SIGKILL' });
      expect(killed.status).toBe(200);
    });
  });
});
