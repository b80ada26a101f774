import { Code, ConnectError, type HandlerContext, type ServiceImpl } from '@connectrpc/connect';
import type { Filesystem } from '@kiln/proto/e2b/filesystem/filesystem_pb';
import { KilnError, ValidationError } from '../../errors.js';
import type { SandboxOpener } from './access.js';
import { entryOf, walk } from './entries.js';
import { toWorkspace } from './paths.js';
import { keepaliveMs, streaming, unary } from './streams.js';
import { DirWatch, WATCH_POLL_MS, Watchers } from './watch.js';

const isNotFound = (err: unknown): boolean => err instanceof KilnError && err.status === 404;

/** Waits `ms`, or less when the call ends (its signal aborts). */
const pause = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
  });

/**
 * envd's `filesystem.Filesystem` over a session's workspace, with the executor's race-safe file
 * operations (never following a link, executor/src/fs/): paths under /home/user are the
 * workspace (paths.ts), and anything outside it is refused (InvalidArgument).
 */
export function e2bFilesystemService(opener: SandboxOpener, watchers = new Watchers()): ServiceImpl<typeof Filesystem> {
  const open = (ctx: HandlerContext) => opener((n) => ctx.requestHeader.get(n));
  const dirWatch = async (ctx: HandlerContext, path: string, recursive: boolean) => {
    const { record, agent } = await open(ctx);
    const dir = toWorkspace(path);
    const info = await agent.stat(dir);
    if (info.type !== 'dir') throw new ValidationError(`${path} is not a directory`);
    return { record, watch: new DirWatch(agent, info.path, recursive) };
  };
  return {
    stat: unary(async (req, ctx) => {
      const { agent } = await open(ctx);
      return { entry: entryOf(await agent.stat(toWorkspace(req.path))) };
    }),
    listDir: unary(async (req, ctx) => {
      const { agent } = await open(ctx);
      const dir = await agent.stat(toWorkspace(req.path));
      if (dir.type !== 'dir') throw new ValidationError(`${req.path} is not a directory`);
      return { entries: (await walk(agent, dir.path, Math.max(1, req.depth))).map(entryOf) };
    }),
    makeDir: unary(async (req, ctx) => {
      const { agent } = await open(ctx);
      const path = toWorkspace(req.path);
      const existing = await agent.stat(path).catch((err: unknown) => {
        if (isNotFound(err)) return undefined;
        throw err;
      });
      if (existing) throw new ConnectError(`${req.path} already exists`, Code.AlreadyExists);
      return { entry: entryOf(await agent.mkdir(path)) };
    }),
    move: unary(async (req, ctx) => {
      const { agent } = await open(ctx);
      return { entry: entryOf(await agent.rename(toWorkspace(req.source), toWorkspace(req.destination))) };
    }),
    remove: unary(async (req, ctx) => {
      const { agent } = await open(ctx);
      if (!(await agent.remove(toWorkspace(req.path), true))) throw new ConnectError(`${req.path} does not exist`, Code.NotFound);
      return {};
    }),
    watchDir: streaming(async function* (req, ctx) {
      const { watch } = await dirWatch(ctx, req.path, req.recursive);
      await watch.start();
      yield { event: { case: 'start', value: {} } };
      const every = keepaliveMs(ctx);
      let quietSince = Date.now();
      let lookMs = 0;
      while (!ctx.signal.aborted) {
        // A big tree takes longer to list: looking again at most a fifth of the time keeps one
        // watch from keeping the executor busy.
        await pause(Math.max(WATCH_POLL_MS, 4 * lookMs), ctx.signal);
        if (ctx.signal.aborted) return;
        const t0 = performance.now();
        const events = await watch.changes();
        lookMs = performance.now() - t0;
        for (const e of events) yield { event: { case: 'filesystem', value: e } };
        if (events.length) quietSince = Date.now();
        else if (Date.now() - quietSince >= every) {
          quietSince = Date.now();
          yield { event: { case: 'keepalive', value: {} } };
        }
      }
    }),
    createWatcher: unary(async (req, ctx) => {
      const { record, watch } = await dirWatch(ctx, req.path, req.recursive);
      return { watcherId: await watchers.create(record.id, watch) };
    }),
    getWatcherEvents: unary(async (req, ctx) => {
      const { record } = await open(ctx);
      return { events: await watchers.get(record.id, req.watcherId).changes() };
    }),
    removeWatcher: unary(async (req, ctx) => {
      const { record } = await open(ctx);
      watchers.remove(record.id, req.watcherId);
      return {};
    }),
  };
}
