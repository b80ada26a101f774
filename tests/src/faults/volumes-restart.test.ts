import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { processDeployment, startKilnProcess, type KilnProcess } from '../support/kiln.js';
import { waitFor } from '../support/wait.js';

/**
 * A volume across control-plane restarts (a real `node control-plane/dist/main.js`): its record is
 * in Redis and its data in an image on disk, so a SIGKILLed control plane finds it, and the live
 * session that mounts it, again (DELETE still answers VolumeInUse); after Ctrl-C (which stops the
 * executors, which unmount the volume's image, as after a host reboot), a new session mounts the
 * same image and finds what the first one wrote.
 */
const KEY = 'volumes-restart-key-0123456789abcdef';
const d = processDeployment({ nodejs: { pool: { minIdle: 1, maxSandboxes: 4, sandboxesPerExecutor: 4 } }, python: null, shell: null, provided: null }, KEY, { KILN_API_KEYS: `restart:${KEY}` });
const { dirs, env } = d;
let cp: KilnProcess | undefined;

afterAll(() => d.cleanup(cp));

const call = (method: string, path: string, body?: unknown) => d.call(cp, method, path, body);
const sh = (id: string, line: string) => call('POST', `/api/v1/sessions/${id}/process/run`, { command: line, shell: true, timeoutMs: 60_000 });

describe('volumes across restarts', () => {
  it('keep their record, their live sessions and their data through a SIGKILL, a Ctrl-C and an unmount of the image', { timeout: 180_000 }, async () => {
    cp = await startKilnProcess(env);
    const made = await call('POST', '/api/v1/volumes', { name: 'keep', sizeMB: 16 });
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    const s = await call('POST', '/api/v1/sessions', { template: 'nodejs', volumes: [{ name: 'keep', path: '/mnt/keep' }], timeoutMs: 600_000 });
    expect(s.status, JSON.stringify(s.body)).toBe(201);
    const id = s.body.id as string;
    expect((await sh(id, 'echo before > /mnt/keep/a.txt')).body.exitCode).toBe(0);

    // A crash: the executors stay, the next control plane adopts the session and its mount.
    await cp.kill('SIGKILL');
    cp = await startKilnProcess(env);
    expect((await call('GET', '/api/v1/volumes/keep')).body.id).toBe(made.body.id);
    expect((await call('GET', `/api/v1/sessions/${id}`)).body).toMatchObject({ status: 'running', volumes: [{ name: 'keep', path: '/mnt/keep', readOnly: false }] });
    expect((await sh(id, 'echo after >> /mnt/keep/a.txt && cat /mnt/keep/a.txt')).body.stdout).toBe('before\nafter\n');
    const busy = await call('DELETE', '/api/v1/volumes/keep');
    expect(busy.status).toBe(409);
    expect(busy.body.error.code).toBe('VolumeInUse');
    expect((await call('DELETE', `/api/v1/sessions/${id}`)).status).toBe(204);

    // Ctrl-C stops everything: the stopping executors unmount the volumes no sandbox uses any
    // more (no idle clock left to wait for), as a reboot of the host would leave them too.
    await cp.kill('SIGINT');
    cp = undefined;
    const mnt = join(dirs.dataDir, 'volumes', createHash('sha256').update('restart').digest('hex').slice(0, 32), made.body.id as string, 'mnt');
    await waitFor('the image unmounted by the stopped executors', () => Promise.resolve(readFileSync('/proc/self/mountinfo', 'utf8').includes(mnt) ? undefined : true), 30_000, 100);

    cp = await startKilnProcess(env);
    const again = await call('POST', '/api/v1/sessions', { template: 'nodejs', volumes: [{ name: 'keep', path: '/mnt/keep', readOnly: true }] });
    expect(again.status, JSON.stringify(again.body)).toBe(201);
    expect((await sh(again.body.id as string, 'cat /mnt/keep/a.txt')).body.stdout).toBe('before\nafter\n');
    expect((await call('DELETE', `/api/v1/sessions/${again.body.id as string}`)).status).toBe(204);
    expect((await call('DELETE', '/api/v1/volumes/keep')).status).toBe(204);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(mnt);
  });
});
