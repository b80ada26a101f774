import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

let k: TestKiln;
beforeAll(async () => {
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 2 } }, python: null, shell: null, provided: null } });
});
afterAll(async () => {
  await k?.stop();
});

/** Creates a session and deletes it when the test is done, whatever happens. */
async function withSession<T>(fn: (id: string) => Promise<T>, body: Record<string, unknown> = {}): Promise<T> {
  const res = await k.call('POST', '/api/v1/sessions', { template: 'nodejs', ...body });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  const id = res.body.id as string;
  try {
    return await fn(id);
  } finally {
    await k.call('DELETE', `/api/v1/sessions/${id}`);
  }
}

const run = (id: string, command: string, args: string[] = [], extra: Record<string, unknown> = {}) => k.call('POST', `/api/v1/sessions/${id}/process/run`, { command, args, ...extra });
const put = (id: string, path: string, data: string | Buffer) => fetch(`${k.url}/api/v1/sessions/${id}/files?path=${encodeURIComponent(path)}`, { method: 'PUT', body: data, headers: { 'content-type': 'application/octet-stream' } });

describe('sessions', () => {
  it('creates, lists by metadata, keeps alive and deletes a session', async () => {
    await withSession(async (id) => {
      const got = await k.call('GET', `/api/v1/sessions/${id}`);
      expect(got.body).toMatchObject({ id, template: 'nodejs', status: 'running', metadata: { owner: 'alice' } });
      const mine = await k.call('GET', '/api/v1/sessions?template=nodejs&metadata.owner=alice');
      expect(mine.body.sessions.map((s: { id: string }) => s.id)).toEqual([id]);
      const none = await k.call('GET', '/api/v1/sessions?metadata.owner=bob');
      expect(none.body.sessions).toEqual([]);
      const kept = await k.call('POST', `/api/v1/sessions/${id}/keepalive`, { timeoutMs: 120_000 });
      expect(kept.status).toBe(200);
      expect(Date.parse(kept.body.expiresAt)).toBeGreaterThan(Date.now() + 100_000);
    }, { metadata: { owner: 'alice' } });
    expect((await k.call('GET', '/api/v1/sessions/ses_nope')).status).toBe(404);
  });

  it('writes a Python script through the files API, runs it, and reads what it wrote', async () => {
    await withSession(async (id) => {
      const script = 'import json\nwith open("out/result.json", "w") as f:\n    json.dump({"sum": sum(range(10))}, f)\nprint("done")\n';
      expect((await put(id, 'app/script.py', script)).status).toBe(200);
      const mk = await k.call('POST', `/api/v1/sessions/${id}/files/mkdir`, { path: 'out' });
      expect(mk.status).toBe(200);
      const res = await run(id, 'python3', ['/workspace/app/script.py']);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body).toMatchObject({ exitCode: 0, stdout: 'done\n', truncated: false });
      const out = await fetch(`${k.url}/api/v1/sessions/${id}/files?path=out/result.json`);
      expect(await out.json()).toEqual({ sum: 45 });
      const list = await k.call('GET', `/api/v1/sessions/${id}/files/list?path=.`);
      expect(list.body.entries.map((e: { name: string }) => e.name)).toEqual(['app', 'out']);
      const who = await run(id, 'sh', ['-c', 'id -u; stat -c %u app/script.py; pwd'], { cwd: '/workspace' });
      expect(who.body.stdout).toBe('1000\n1000\n/workspace\n');
      const binary = Buffer.from([0, 1, 2, 255, 254, 10, 13]);
      await put(id, 'bin.dat', binary);
      expect(Buffer.from(await (await fetch(`${k.url}/api/v1/sessions/${id}/files?path=bin.dat`)).arrayBuffer())).toEqual(binary);
      const stat = await k.call('GET', `/api/v1/sessions/${id}/files/stat?path=bin.dat`);
      expect(stat.body).toMatchObject({ path: '/workspace/bin.dat', type: 'file', size: 7 });
      expect((await k.call('POST', `/api/v1/sessions/${id}/files/rename`, { from: 'bin.dat', to: 'moved/bin.dat' })).status).toBe(200);
      expect((await k.call('GET', `/api/v1/sessions/${id}/files/stat?path=bin.dat`)).status).toBe(404);
      const tar = Buffer.from(await (await fetch(`${k.url}/api/v1/sessions/${id}/files/tar?path=app`)).arrayBuffer());
      const up = await fetch(`${k.url}/api/v1/sessions/${id}/files/tar?path=copy`, { method: 'PUT', body: tar, headers: { 'content-type': 'application/x-tar' } });
      expect(up.status).toBe(200);
      expect(await (await fetch(`${k.url}/api/v1/sessions/${id}/files?path=copy/script.py`)).text()).toBe(script);
      expect((await k.call('DELETE', `/api/v1/sessions/${id}/files?path=copy&recursive=true`)).body).toEqual({ existed: true });
    });
  });

  it('streams output as it comes', async () => {
    await withSession(async (id) => {
      const t0 = Date.now();
      const res = await fetch(`${k.url}/api/v1/sessions/${id}/process/stream`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ command: 'sh', args: ['-c', 'for i in 1 2 3 4; do echo line $i; sleep 0.8; done'] }),
      });
      expect(res.status).toBe(200);
      const arrivals: Array<{ at: number; line: string }> = [];
      let exit: any;
      const decoder = new TextDecoder();
      let buf = '';
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const event = /^event: (.*)$/m.exec(frame)?.[1];
          const data = JSON.parse(/^data: (.*)$/m.exec(frame)?.[1] ?? 'null');
          if (event === 'stdout') arrivals.push({ at: Date.now() - t0, line: data.data });
          if (event === 'exit') exit = data;
        }
      }
      expect(arrivals.map((a) => a.line).join('')).toBe('line 1\nline 2\nline 3\nline 4\n');
      expect(exit).toMatchObject({ exitCode: 0, truncated: false });
      // Lines arrive spread over ~2.4 s, not all at the end.
      expect((arrivals.at(-1)?.at ?? 0) - (arrivals[0]?.at ?? 0)).toBeGreaterThan(1800);
    });
  });

  it('truncates 100 MB of output instead of buffering it', async () => {
    await withSession(async (id) => {
      const t0 = Date.now();
      const res = await run(id, 'sh', ['-c', 'yes | head -c 100000000; echo done >&2']);
      expect(res.status).toBe(200);
      expect(res.body.exitCode).toBe(0);
      expect(res.body.truncated).toBe(true);
      expect(res.body.stdoutTruncated).toBe(true);
      expect(res.body.stdout.length).toBe(1024 * 1024);
      expect(res.body.stderr).toBe('done\n');
      expect(Date.now() - t0).toBeLessThan(20_000);
    });
  });

  it('refuses paths outside /workspace with 400 PathOutsideWorkspace, and never follows a link', async () => {
    await withSession(async (id) => {
      expect((await run(id, 'ln', ['-s', '/', 'root'])).body.exitCode).toBe(0);
      const attempts = [
        ['GET', '/files?path=../etc/passwd', 'PathOutsideWorkspace'],
        ['GET', '/files?path=/etc/passwd', 'PathOutsideWorkspace'],
        ['GET', '/files/stat?path=sub/../../x', 'PathOutsideWorkspace'],
        ['DELETE', '/files?path=/etc&recursive=true', 'PathOutsideWorkspace'],
        // The host walks the workspace without following links, wherever they point.
        ['GET', '/files?path=root/etc/passwd', 'SymlinkNotFollowed'],
        ['GET', '/files/list?path=root', 'SymlinkNotFollowed'],
        ['PUT', '/files?path=root/tmp/evil', 'SymlinkNotFollowed'],
        ['DELETE', '/files?path=root/tmp&recursive=true', 'SymlinkNotFollowed'],
      ] as const;
      for (const [method, path, code] of attempts) {
        const res = await k.call(method, `/api/v1/sessions/${id}${path}`, method === 'PUT' ? 'x' : undefined);
        expect(res.status, `${method} ${path}`).toBe(400);
        expect(res.body.error.code, `${method} ${path}`).toBe(code);
      }
      const rename = await k.call('POST', `/api/v1/sessions/${id}/files/rename`, { from: 'root', to: '../../x' });
      expect(rename.body.error.code).toBe('PathOutsideWorkspace');
      // The link itself is an entry like any other: stat'ed and removed as a link.
      expect((await k.call('GET', `/api/v1/sessions/${id}/files/stat?path=root`)).body).toMatchObject({ type: 'symlink', symlinkTarget: '/' });
      expect((await k.call('DELETE', `/api/v1/sessions/${id}/files?path=root&recursive=true`)).body).toEqual({ existed: true });
    });
  });

  it('keeps two sessions apart', async () => {
    await withSession(async (a) => {
      await withSession(async (b) => {
        await put(a, 'secret.txt', 'only a');
        expect((await k.call('GET', `/api/v1/sessions/${b}/files/stat?path=secret.txt`)).status).toBe(404);
        const ls = await run(b, 'sh', ['-c', 'ls -A /workspace; ps -e -o comm= | sort | tr "\\n" " "']);
        expect(ls.body.stdout).not.toContain('secret.txt');
        await run(a, 'sleep', ['30'], { timeoutMs: 100 });
        const psA = await k.call('POST', `/api/v1/sessions/${a}/processes`, { command: 'sleep', args: ['300'] });
        expect(psA.status).toBe(201);
        const seen = await run(b, 'ps', ['-e', '-o', 'args=']);
        expect(seen.body.stdout).not.toContain('sleep 300');
      });
    });
  });

  it('runs a terminal over a WebSocket: stty size, resize, exit 3', async () => {
    await withSession(async (id) => {
      const ws = new WebSocket(`${k.url.replace('http', 'ws')}/api/v1/sessions/${id}/pty?cols=100&rows=30`);
      let screen = '';
      let exit: { type: string; code: number } | undefined;
      const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
      ws.on('message', (data, isBinary) => {
        if (isBinary) screen += (data as Buffer).toString();
        else {
          const msg = JSON.parse((data as Buffer).toString());
          if (msg.type === 'exit') exit = msg;
        }
      });
      await new Promise<void>((resolve, reject) => {
        ws.on('open', () => resolve());
        ws.on('error', reject);
      });
      const waitFor = async (re: RegExp) => {
        for (let i = 0; i < 100 && !re.test(screen); i++) await new Promise((r) => setTimeout(r, 50));
        expect(screen).toMatch(re);
      };
      ws.send(Buffer.from('stty size; id -un\n'));
      await waitFor(/30 100\r?\n/);
      await waitFor(/sandbox/);
      ws.send(JSON.stringify({ type: 'resize', cols: 120, rows: 40 }));
      ws.send(Buffer.from('stty size\n'));
      await waitFor(/40 120\r?\n/);
      ws.send(Buffer.from('exit 3\n'));
      expect(await closed).toBe(1000);
      expect(exit).toEqual({ type: 'exit', code: 3 });
    });
  });

  it('deleting a session kills its processes', async () => {
    const res = await k.call('POST', '/api/v1/sessions', { template: 'nodejs' });
    const id = res.body.id as string;
    const started = await k.call('POST', `/api/v1/sessions/${id}/processes`, { command: 'sh', args: ['-c', 'exec sleep 1234'] });
    expect(started.status).toBe(201);
    await new Promise((r) => setTimeout(r, 200));
    const listed = await k.call('GET', `/api/v1/sessions/${id}/processes`);
    expect(listed.body.processes[0]).toMatchObject({ running: true, command: 'sh' });
    const hostHas = async () => (await import('node:child_process')).execFileSync('ps', ['-e', '-o', 'args=']).toString().includes('sleep 1234');
    expect(await hostHas()).toBe(true);
    expect((await k.call('DELETE', `/api/v1/sessions/${id}`)).status).toBe(204);
    for (let i = 0; i < 40 && (await hostHas()); i++) await new Promise((r) => setTimeout(r, 50));
    expect(await hostHas()).toBe(false);
    expect((await k.call('GET', `/api/v1/sessions/${id}`)).status).toBe(404);
  });

  it('signals a background process', async () => {
    await withSession(async (id) => {
      const p = await k.call('POST', `/api/v1/sessions/${id}/processes`, { command: 'sleep', args: ['100'] });
      const sig = await k.call('POST', `/api/v1/sessions/${id}/processes/${p.body.pid}/signal`, { signal: 'SIGKILL' });
      expect(sig.status).toBe(200);
      for (let i = 0; i < 40; i++) {
        const l = await k.call('GET', `/api/v1/sessions/${id}/processes`);
        if (!l.body.processes[0].running) {
          expect(l.body.processes[0].signal).toBe('SIGKILL');
          return;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error('process still running after SIGKILL');
    });
  });

  it('bad input to the process and file endpoints is a 4xx with a code, never a 5xx', async () => {
    await withSession(async (id) => {
      const bad: Array<[string, string, unknown, number, string]> = [
        // pids past uint32 cannot cross the executor's wire at all
        ['POST', `/api/v1/sessions/${id}/processes/4294967296/signal`, { signal: 'SIGTERM' }, 400, 'InvalidRequest'],
        ['POST', `/api/v1/sessions/${id}/processes/99999999999999/signal`, { signal: 'SIGTERM' }, 400, 'InvalidRequest'],
        ['POST', `/api/v1/sessions/${id}/processes/4242/signal`, { signal: 'SIGTERM' }, 404, 'ProcessNotFound'],
        ['POST', `/api/v1/sessions/${id}/processes/4242/signal`, { signal: 'SIGNOPE' }, 400, 'InvalidSignal'],
        ['POST', `/api/v1/sessions/${id}/processes/4242/signal`, { signal: `SIG\u0000ü${'x'.repeat(5000)}` }, 400, 'InvalidSignal'],
        ['POST', `/api/v1/sessions/${id}/process/run`, { command: 'a\u0000b' }, 400, 'InvalidRequest'],
        ['GET', `/api/v1/sessions/${id}/files/stat?path=${encodeURIComponent('../../etc/passwd')}`, undefined, 400, 'PathOutsideWorkspace'],
        ['GET', `/api/v1/sessions/${id}/files/stat?path=${encodeURIComponent(`${'n'.repeat(300)}/x`)}`, undefined, 400, 'NameTooLong'],
      ];
      for (const [method, path, body, status, code] of bad) {
        const res = await k.call(method, path, body);
        expect({ status: res.status, code: res.body?.error?.code }, `${method} ${path.slice(0, 120)}`).toEqual({ status, code });
      }
      // The session still works after all of them.
      expect((await k.call('GET', `/api/v1/sessions/${id}/processes`)).status).toBe(200);
    });
  });

  it('an idle session expires', async () => {
    const res = await k.call('POST', '/api/v1/sessions', { template: 'nodejs', idleTimeoutMs: 1000 });
    const id = res.body.id as string;
    for (let i = 0; i < 60 && (await k.call('GET', `/api/v1/sessions/${id}`)).status === 200; i++) await new Promise((r) => setTimeout(r, 100));
    expect((await k.call('GET', `/api/v1/sessions/${id}`)).status).toBe(404);
    expect((await run(id, 'true')).status).toBe(404);
  });

  it('execute keeps module state across calls', async () => {
    await withSession(async (id) => {
      const code = `let n = 0; const fs = require('fs'); exports.handler = async (e) => { n += e.by; fs.writeFileSync('/workspace/n.txt', String(n)); return { n }; };`;
      const a = await k.call('POST', `/api/v1/sessions/${id}/execute`, { code, event: { by: 2 } });
      expect(a.status, JSON.stringify(a.body)).toBe(200);
      expect(a.body.result).toEqual({ n: 2 });
      const b = await k.call('POST', `/api/v1/sessions/${id}/execute`, { code, event: { by: 3 } });
      expect(b.body.result).toEqual({ n: 5 });
      expect(await (await fetch(`${k.url}/api/v1/sessions/${id}/files?path=n.txt`)).text()).toBe('5');
      const other = await k.call('POST', `/api/v1/sessions/${id}/execute`, { code: 'exports.handler = async () => 1' });
      expect(other.status).toBe(409);
      expect(other.body.error.code).toBe('SessionCodeConflict');
    });
  });
});
