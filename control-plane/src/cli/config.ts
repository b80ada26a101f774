import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

/** Where `kiln login` keeps the URL and key: KILN_CONFIG, or ~/.config/kiln/config.json. */
export function configPath(): string {
  return process.env.KILN_CONFIG || join(process.env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'kiln', 'config.json');
}

export interface CliConfig {
  url: string;
  apiKey?: string;
}

function stored(): Partial<CliConfig> {
  try {
    return JSON.parse(readFileSync(configPath(), 'utf8')) as Partial<CliConfig>;
  } catch {
    return {}; // no login yet (or an unreadable file): the environment and defaults decide
  }
}

/** The server and key to use: KILN_URL / KILN_API_KEY first, then the login file, then the local default. */
export function resolveConfig(): CliConfig {
  const file = stored();
  const url = (process.env.KILN_URL || file.url || 'http://127.0.0.1:8080').replace(/\/+$/, '');
  const apiKey = process.env.KILN_API_KEY || file.apiKey;
  return apiKey ? { url, apiKey } : { url };
}

/** Saves the login, readable by its owner only (it holds a key). */
export function saveConfig(config: CliConfig): string {
  const path = configPath();
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
  return path;
}
