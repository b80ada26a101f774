import { createReadStream, createWriteStream, readFileSync, statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { pipeline, Readable } from 'node:stream';
import { pipeline as pipelineAsync } from 'node:stream/promises';
import { KilnError, type ExecutionEntry, type FileInfo } from '@kiln-sandbox/sdk';
import { Kiln } from '@kiln-sandbox/sdk/node';
import { resolveConfig, saveConfig } from './config.js';
import { doctorChecks } from './doctor.js';
import { progress } from './progress.js';
import { shell } from './shell.js';

/** A usage mistake: exit code 2 and the message (what to type instead). */
export class UsageError extends Error {}

export interface Flags {
  json?: boolean;
  template?: string;
  name?: string;
  runtime?: string;
  handler?: string;
  event?: string;
  function?: string;
  follow?: boolean;
  url?: string;
  key?: string;
  interval?: string;
}

const out = (s: string): boolean => process.stdout.write(`${s}\n`);
const client = (): Kiln => new Kiln(resolveConfig());

/** Rows as aligned columns, or JSON with --json. */
function table(rows: ReadonlyArray<object>, columns: string[], json: boolean | undefined): void {
  if (json) {
    out(JSON.stringify(rows, null, 2));
    return;
  }
  const cell = (v: unknown): string => {
    if (v === undefined || v === null) return '';
    if (typeof v === 'string') return v;
    if (typeof v === 'number' || typeof v === 'boolean') return `${v}`;
    return JSON.stringify(v);
  };
  const cells = rows.map((r) => columns.map((c) => cell((r as Record<string, unknown>)[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => (row[i] as string).length)));
  out(columns.map((c, i) => c.toUpperCase().padEnd(widths[i] as number)).join('  '));
  for (const row of cells) out(row.map((v, i) => v.padEnd(widths[i] as number)).join('  ').trimEnd());
}

export async function login(flags: Flags): Promise<number> {
  const url = (flags.url || process.env.KILN_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
  const apiKey = flags.key || process.env.KILN_API_KEY;
  const kiln = new Kiln(apiKey ? { url, apiKey } : { url });
  // An authenticated call: a wrong key fails here, not at the first real command.
  await kiln.sessions.list();
  const path = saveConfig(apiKey ? { url, apiKey } : { url });
  out(`logged in to ${url}${apiKey ? '' : ' (no key: the server must have none)'}; saved in ${path}`);
  return 0;
}

export async function sessions(args: string[], flags: Flags, rest: string[]): Promise<number> {
  const [sub, id, ...more] = args;
  const kiln = client();
  switch (sub) {
    case 'ls':
    case 'list':
      table(await kiln.sessions.list(flags.template ? { template: flags.template } : {}), ['id', 'template', 'status', 'createdAt', 'expiresAt'], flags.json);
      return 0;
    case 'create': {
      const s = await kiln.sessions.create(flags.template ? { template: flags.template } : {});
      out(flags.json ? JSON.stringify(s.info, null, 2) : s.id);
      return 0;
    }
    case 'rm':
      if (!id) throw new UsageError('sessions rm needs a session id: kiln sessions rm <id>');
      for (const one of [id, ...more]) await kiln.sessions.kill(one);
      return 0;
    case 'exec': {
      if (!id || rest.length === 0) throw new UsageError('sessions exec needs an id and a command: kiln sessions exec <id> -- <command...>');
      const session = await kiln.sessions.connect(id);
      const r = await session.commands.run(rest.join(' '), { onStdout: (d) => process.stdout.write(d), onStderr: (d) => process.stderr.write(d) });
      return r.exitCode;
    }
    case 'shell':
      if (!id) throw new UsageError('sessions shell needs a session id: kiln sessions shell <id>');
      return shell(id);
    case 'cp':
      return cp(kiln, id, more[0]);
    default:
      throw new UsageError('use: kiln sessions ls|create|rm|exec|shell|cp');
  }
}

/** `SRC DST`, one of them `<session-id>:<path>`: a streamed upload or download. */
async function cp(kiln: Kiln, src: string | undefined, dst: string | undefined): Promise<number> {
  const remote = (s: string): { id: string; path: string } | undefined => {
    const m = /^([A-Za-z0-9_-]+):(.*)$/.exec(s);
    return m ? { id: m[1] as string, path: m[2] || '.' } : undefined;
  };
  if (!src || !dst) throw new UsageError('sessions cp needs a source and a destination: kiln sessions cp ./local <id>:path, or <id>:path ./local');
  const from = remote(src);
  const to = remote(dst);
  if (Boolean(from) === Boolean(to)) throw new UsageError('exactly one side of sessions cp is a session path (<id>:<path>)');
  if (to) {
    const session = await kiln.sessions.connect(to.id);
    const body = pipeline(createReadStream(src), progress(basename(src), statSync(src).size), () => undefined);
    const info: FileInfo = await session.files.upload(to.path, Readable.toWeb(body) as ReadableStream<Uint8Array>);
    out(`${src} -> ${to.id}:${info.path} (${info.size} bytes)`);
  } else if (from) {
    const session = await kiln.sessions.connect(from.id);
    const { size } = await session.files.stat(from.path);
    const stream = Readable.fromWeb(await session.files.download(from.path));
    await pipelineAsync(stream, progress(basename(from.path), size), createWriteStream(dst));
    out(`${from.id}:${from.path} -> ${dst}`);
  }
  return 0;
}

export async function fn(args: string[], flags: Flags): Promise<number> {
  const [sub, target] = args;
  const kiln = client();
  if (sub === 'deploy') {
    if (!target) throw new UsageError('fn deploy needs a folder: kiln fn deploy <dir> [--name N] [--runtime nodejs20.x] [--handler index.handler]');
    const name = flags.name || basename(resolve(target));
    const f = await kiln.functions.deploy(target, { name, runtime: flags.runtime || 'nodejs20.x', ...(flags.handler ? { handler: flags.handler } : {}) });
    out(flags.json ? JSON.stringify(f, null, 2) : `deployed ${f.name} (${f.runtime}, ${f.codeSize} bytes, sha256 ${f.codeSha256})`);
    return 0;
  }
  if (sub === 'invoke') {
    if (!target) throw new UsageError('fn invoke needs a function name: kiln fn invoke <name> [--event file.json|-]');
    const text = flags.event === undefined ? '{}' : readFileSync(flags.event === '-' ? 0 : flags.event, 'utf8');
    let event: unknown;
    try {
      event = JSON.parse(text);
    } catch {
      throw new UsageError(`the event must be JSON; ${flags.event} is not`);
    }
    const r = await kiln.functions.invoke(target, event);
    if (flags.json) out(JSON.stringify(r, null, 2));
    else {
      if (r.logs) process.stderr.write(r.logs.endsWith('\n') ? r.logs : `${r.logs}\n`);
      out(r.status === 'succeeded' ? JSON.stringify(r.result) : JSON.stringify(r.error ?? r.status));
    }
    return r.status === 'succeeded' ? 0 : 1;
  }
  if (sub === 'ls' || sub === 'list') {
    table(await kiln.functions.list(), ['name', 'runtime', 'version', 'lastModified'], flags.json);
    return 0;
  }
  throw new UsageError('use: kiln fn deploy|invoke|ls');
}

export async function templates(args: string[], flags: Flags): Promise<number> {
  if (args[0] !== 'ls' && args[0] !== 'list') throw new UsageError('use: kiln templates ls');
  table(await client().templates.list(), ['name', 'description'], flags.json);
  return 0;
}

function logLine(e: ExecutionEntry, json: boolean | undefined): string {
  if (json) return JSON.stringify(e);
  const what = e.function ? `${e.function.name}:${e.function.version}` : 'execution';
  const logs = e.logs ? `\n${e.logs.trimEnd().replace(/^/gm, '  ')}` : '';
  return `${e.finishedAt ?? e.createdAt} ${e.id} ${what} ${e.status} ${e.durationMs ?? '?'}ms${logs}`;
}

/** `logs [-f]`: recent executions, then (with -f) each new one as it finishes, until interrupted. */
export async function logs(flags: Flags): Promise<number> {
  const kiln = client();
  const filter = flags.function ? { function: flags.function } : {};
  const seen = new Set<string>();
  const first = await kiln.executions.list({ ...filter, limit: 20 });
  for (const e of first.executions.reverse()) {
    seen.add(e.id);
    out(logLine(e, flags.json));
  }
  if (!flags.follow) return 0;
  const every = Number(flags.interval ?? 1000);
  let since = Date.now() - 60_000;
  for (;;) {
    await new Promise((r) => setTimeout(r, every));
    const page = await kiln.executions.list({ ...filter, since, limit: 100 });
    for (const e of page.executions.reverse()) {
      if (seen.has(e.id)) continue;
      seen.add(e.id);
      out(logLine(e, flags.json));
    }
    // A window that overlaps the last poll: records are listed when they finish, not when polled.
    since = Date.now() - 60_000;
    if (seen.size > 10_000) seen.clear();
  }
}

export function doctor(flags: Flags): number {
  const checks = doctorChecks();
  if (flags.json) out(JSON.stringify(checks, null, 2));
  else for (const c of checks) out(`${c.ok ? 'ok     ' : c.required ? 'MISSING' : 'missing'} ${c.name}: ${c.detail}${c.ok ? '' : `\n        without it: ${c.without}`}`);
  return checks.some((c) => c.required && !c.ok) ? 1 : 0;
}

/** The message for a failure: Kiln's error with what to do about it. */
export function describeError(err: unknown, url: string): string {
  if (err instanceof KilnError) {
    const hint = err.status === 401 ? ' Run `kiln login --url <url> --key <key>` or set KILN_API_KEY.' : '';
    return `${err.code}: ${err.message}${hint}`;
  }
  // fetch's own failure (refused, unknown host, a port fetch blocks): the cause says which.
  if (err instanceof TypeError && err.message === 'fetch failed') {
    const cause = err.cause instanceof Error ? err.cause.message || err.cause.name : String(err.cause);
    return `cannot reach Kiln at ${url} (${cause}); start it, or run kiln login --url <url>`;
  }
  return (err as Error).message ?? String(err);
}
