import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';

/**
 * Where the scripts live: `control-plane/src/scheduler/lua/`, read from there by the compiled
 * code too (tsc copies no .lua into dist/; control-plane's package.json `files` ships the folder).
 */
export const LUA_DIR = fileURLToPath(new URL('../../src/scheduler/lua/', import.meta.url));

/** One script: `<name>-<number of keys>.lua`, as BullMQ names its `commands/*.lua`. */
export interface LuaScript {
  /** The ioredis command name: `kiln` + the file name in camel case (`drop-executor` → `kilnDropExecutor`). */
  command: string;
  numberOfKeys: number;
  lua: string;
}

let cached: LuaScript[] | undefined;

/** Every script of the folder, read once per process. */
export function luaScripts(): LuaScript[] {
  cached ??= readdirSync(LUA_DIR)
    .filter((f) => f.endsWith('.lua'))
    .map((file) => {
      const m = /^([a-z-]+)-(\d+)\.lua$/.exec(file);
      if (!m?.[1] || !m[2]) throw new Error(`${LUA_DIR}${file}: a scheduler script is named <name>-<number of keys>.lua`);
      const command = `kiln${m[1].replace(/(^|-)([a-z])/g, (_s, _d: string, c: string) => c.toUpperCase())}`;
      return { command, numberOfKeys: Number(m[2]), lua: readFileSync(LUA_DIR + file, 'utf8') };
    });
  return cached;
}

/**
 * Defines every script on a connection as an ioredis command (EVALSHA, falling back to EVAL once
 * per connection). Safe to call again on the same connection: ioredis replaces a definition
 * with the same one.
 */
export function defineLuaCommands(redis: Redis): void {
  for (const s of luaScripts()) redis.defineCommand(s.command, { numberOfKeys: s.numberOfKeys, lua: s.lua });
}
