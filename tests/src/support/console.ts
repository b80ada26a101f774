import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
/** Debian's Chromium (scripts/setup.sh installs it for the tests); playwright-core downloads nothing. */
export const CHROMIUM = '/usr/bin/chromium';

/** The console's built files, built here when a test runs before scripts/setup.sh did. */
export function ensureConsoleBuilt(): string {
  const dir = join(REPO, 'console', 'dist');
  if (!existsSync(join(dir, 'index.html'))) execFileSync('npm', ['run', 'build', '-w', 'console', '--silent'], { cwd: REPO, stdio: 'inherit' });
  return dir;
}

export function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run scripts/setup.sh (it installs Debian's chromium for the tests)`);
  // --no-sandbox: the tests run as root, where Chromium's own sandbox refuses to start.
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
}

export const REPO_ROOT = REPO;
