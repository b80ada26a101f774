import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ZipInputFile } from './zip.js';

const ROOT_MODULES = fileURLToPath(new URL('../../../node_modules', import.meta.url));

/** Files a handler never loads: docs, type declarations, source maps. */
const SKIP = /(\.md|\.markdown|\.d\.ts|\.d\.cts|\.d\.mts|\.map)$/i;

function walk(dir: string, base: string, keep: (rel: string) => boolean, out: ZipInputFile[]): void {
  for (const entry of readdirSync(dir)) {
    const full = join(dir, entry);
    const rel = relative(base, full);
    if (statSync(full).isDirectory()) walk(full, base, keep, out);
    else if (!SKIP.test(entry) && keep(rel)) out.push({ path: rel, content: readFileSync(full) });
  }
}

/**
 * The files of npm packages and everything they depend on, as this repository's node_modules has
 * them, laid out under `node_modules/` for a function's zip: how a user bundles a framework into a
 * Lambda package. `keep` narrows a package's files (hono: only its CommonJS build).
 */
export function packageFiles(names: string[], keep: Record<string, (rel: string) => boolean> = {}): ZipInputFile[] {
  const out: ZipInputFile[] = [];
  const seen = new Set<string>();
  const add = (name: string, from: string): void => {
    // Node's resolution: a copy nested under the requiring package wins over the hoisted one.
    const nested = join(from, 'node_modules', name);
    const dir = statSync(nested, { throwIfNoEntry: false })?.isDirectory() ? nested : join(ROOT_MODULES, name);
    if (seen.has(dir)) return;
    seen.add(dir);
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    if (!dir.startsWith(join(from, 'node_modules'))) {
      const files: ZipInputFile[] = [];
      walk(dir, dir, keep[name] ?? (() => true), files);
      for (const f of files) out.push({ ...f, path: `node_modules/${name}/${f.path}` });
    }
    for (const dep of Object.keys(pkg.dependencies ?? {})) add(dep, dir);
  };
  for (const n of names) add(n, ROOT_MODULES);
  return out;
}
