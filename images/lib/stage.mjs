#!/usr/bin/env node
// Helpers for images/build.sh (Node 20, no dependencies).
//
//   node stage.mjs app <repoRoot> <workspace> <outDir>
//       Stage a workspace (e.g. "executor") and its production dependency
//       closure into outDir, in the same npm-workspaces layout as the repo:
//         outDir/package.json            (minimal)
//         outDir/<workspace>/...         (package.json, dist/, runtime/, ...)
//         outDir/<other workspaces>/...  (e.g. proto/, when depended on)
//         outDir/node_modules/...        (copied from the repo's node_modules,
//                                         native addons included; workspace
//                                         links kept as relative symlinks)
//       so Node's module resolution inside the image is exactly the one on
//       the host. Only dependencies/optionalDependencies/peerDependencies are
//       followed (never devDependencies). Prints a JSON summary on stdout.
//
//   node stage.mjs hash <dir> [extra...]
//       Content hash of a directory tree (paths, file contents, exec bits,
//       symlink targets; not timestamps or owners) plus extra strings.
//
//   node stage.mjs templates <repoRoot>
//       One line per templates/*.json: "<name>\t<image>\t<file>\t<runtimes,...|->".
//
//   node stage.mjs version <package.json>
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const die = (msg) => {
  process.stderr.write(`stage.mjs: ${msg}\n`);
  process.exit(1);
};
const readJson = (file) => JSON.parse(fs.readFileSync(file, 'utf8'));
const isInside = (child, parent) => {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
};

// Top-level entries of a workspace package that never go into an image when
// its package.json has no "files" list.
const WORKSPACE_EXCLUDE = [
  /^node_modules$/,
  /^src$/,
  /^tests?$/,
  /^__tests__$/,
  /^coverage$/,
  /^tsconfig.*\.json$/,
  /\.tsbuildinfo$/,
  /^vitest\..*$/,
  /^\.eslint.*$/,
  /^\./,
];

function stageApp(repoRoot, workspace, outDir) {
  repoRoot = fs.realpathSync(repoRoot);
  const wsDir = path.join(repoRoot, workspace);
  if (!fs.existsSync(path.join(wsDir, 'package.json'))) die(`${wsDir}/package.json not found`);
  fs.rmSync(outDir, { recursive: true, force: true });
  fs.mkdirSync(outDir, { recursive: true });

  const packages = []; // { rel, name, version, kind }
  const warnings = [];
  const seen = new Set(); // realpaths already staged

  // Native prebuilds for other platforms (e.g. node-pty ships 58 MB of
  // win32/darwin binaries in prebuilds/<platform>-<arch>/) never load in a
  // linux image: keep only this host's platform-arch. The image's platform is
  // the host's, since native addons are staged as built by the host's npm.
  const platformPrefix = `${process.platform}-${process.arch}`;
  const pruned = [];
  const copyTree = (src, dst, filterTop, pkgRoot) => {
    fs.cpSync(src, dst, {
      recursive: true,
      verbatimSymlinks: true,
      filter: (p) => {
        if (p === src) return true;
        const rel = path.relative(src, p);
        const parts = rel.split(path.sep);
        if (parts.length === 1) return filterTop(rel);
        if (pkgRoot && parts.length === 2 && parts[0] === 'prebuilds' && !parts[1].startsWith(platformPrefix)) {
          pruned.push(path.relative(repoRoot, p));
          return false;
        }
        return !p.endsWith('.tsbuildinfo');
      },
    });
  };

  const stageWorkspace = (realDir) => {
    const rel = path.relative(repoRoot, realDir);
    const pkg = readJson(path.join(realDir, 'package.json'));
    const dst = path.join(outDir, rel);
    if (Array.isArray(pkg.files) && pkg.files.length > 0) {
      fs.mkdirSync(dst, { recursive: true });
      fs.copyFileSync(path.join(realDir, 'package.json'), path.join(dst, 'package.json'));
      for (const entry of pkg.files) {
        const src = path.join(realDir, entry);
        if (!fs.existsSync(src)) {
          warnings.push(`${rel}: "files" entry ${entry} does not exist`);
          continue;
        }
        fs.cpSync(src, path.join(dst, entry), { recursive: true, verbatimSymlinks: true });
      }
    } else {
      copyTree(realDir, dst, (name) => !WORKSPACE_EXCLUDE.some((re) => re.test(name)));
    }
    if (!fs.existsSync(path.join(realDir, 'dist')) && !pkg.files) {
      warnings.push(`${rel}: no dist/ (was the project built?)`);
    }
    packages.push({ rel, name: pkg.name, version: pkg.version, kind: 'workspace' });
    return pkg;
  };

  // Node's lookup: <dir>/node_modules/<name>, then the parent dirs, never
  // above the repo root (nothing above /opt/kiln exists in the image).
  const lookup = (name, fromRealDir) => {
    let dir = fromRealDir;
    for (;;) {
      const cand = path.join(dir, 'node_modules', name);
      if (fs.existsSync(path.join(cand, 'package.json'))) return cand;
      if (dir === repoRoot || !isInside(dir, repoRoot)) return null;
      dir = path.dirname(dir);
    }
  };

  // visit(dir): follow the dependencies of the package staged at `dir` (an
  // in-repo path). Lookups start where the package will sit in the image:
  // its in-repo path (Node realpaths symlinks, and a workspace's real path is
  // in the repo; other symlinked packages are copied to the link's place).
  const visit = (dir) => {
    if (seen.has(dir)) return;
    seen.add(dir);
    const pkg = readJson(path.join(dir, 'package.json'));
    const deps = [
      ...Object.keys(pkg.dependencies ?? {}).map((n) => [n, 'required']),
      ...Object.keys(pkg.optionalDependencies ?? {}).map((n) => [n, 'optional']),
      ...Object.keys(pkg.peerDependencies ?? {}).map((n) => [n, pkg.peerDependenciesMeta?.[n]?.optional ? 'optional' : 'peer']),
    ];
    for (const [name, kind] of deps) {
      const found = lookup(name, dir);
      if (!found) {
        if (kind === 'required') die(`${pkg.name}: dependency ${name} is not installed (run npm install)`);
        if (kind === 'peer') warnings.push(`${pkg.name}: peer dependency ${name} not installed`);
        continue;
      }
      const real = fs.realpathSync(found);
      const relLink = path.relative(repoRoot, found);
      const dstLink = path.join(outDir, relLink);
      const insideNodeModules = path.relative(repoRoot, real).split(path.sep).includes('node_modules');
      if (real !== found && isInside(real, repoRoot) && !insideNodeModules) {
        // A workspace package linked into node_modules (npm workspaces).
        if (!seen.has(real)) stageWorkspace(real);
        if (!fs.existsSync(dstLink)) {
          fs.mkdirSync(path.dirname(dstLink), { recursive: true });
          fs.symlinkSync(path.relative(path.dirname(dstLink), path.join(outDir, path.relative(repoRoot, real))), dstLink);
        }
        visit(real);
        continue;
      }
      if (!seen.has(found)) {
        // Regular package (a symlink to outside the repo is copied dereferenced).
        copyTree(real, dstLink, (n) => n !== 'node_modules', real);
        const p = readJson(path.join(real, 'package.json'));
        packages.push({ rel: relLink, name: p.name, version: p.version, kind });
      }
      visit(found);
    }
  };

  const wsReal = fs.realpathSync(wsDir);
  stageWorkspace(wsReal);
  visit(wsReal);

  const root = readJson(path.join(repoRoot, 'package.json'));
  fs.writeFileSync(
    path.join(outDir, 'package.json'),
    JSON.stringify(
      {
        name: `${root.name ?? 'kiln'}-image`,
        version: root.version,
        private: true,
        description: `staged by images/build.sh: ${workspace} and its production dependencies`,
      },
      null,
      2,
    ) + '\n',
  );

  const native = [];
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && e.name.endsWith('.node')) native.push(path.relative(outDir, p));
    }
  };
  walk(outDir);
  packages.sort((a, b) => a.rel.localeCompare(b.rel));
  process.stdout.write(JSON.stringify({ workspace, packages, native, pruned, warnings }, null, 2) + '\n');
}

function hashDir(dir, extra) {
  const h = createHash('sha256');
  const walk = (abs, rel) => {
    const entries = fs.readdirSync(abs, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const p = path.join(abs, e.name);
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isSymbolicLink()) h.update(`L ${r} -> ${fs.readlinkSync(p)}\0`);
      else if (e.isDirectory()) {
        h.update(`D ${r}\0`);
        walk(p, r);
      } else if (e.isFile()) {
        const st = fs.statSync(p);
        h.update(`F ${r} ${st.mode & 0o111 ? 'x' : '-'} ${st.size}\0`);
        h.update(fs.readFileSync(p));
        h.update('\0');
      } else h.update(`O ${r}\0`);
    }
  };
  walk(dir, '');
  for (const x of extra) h.update(`E ${x}\0`);
  process.stdout.write(h.digest('hex') + '\n');
}

function listTemplates(repoRoot) {
  const dir = path.join(repoRoot, 'templates');
  if (!fs.existsSync(dir)) return;
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort();
  for (const f of files) {
    const file = path.join(dir, f);
    let t;
    try {
      t = readJson(file);
    } catch (err) {
      die(`${file}: ${err.message}`);
    }
    const name = t.name ?? path.basename(f, '.json');
    if (typeof name !== 'string' || !/^[a-z0-9][a-z0-9._-]*$/.test(name)) die(`${file}: bad "name"`);
    if (typeof t.image !== 'string' || !/^[a-z0-9][a-z0-9._/:@-]*$/.test(t.image)) die(`${file}: missing or bad "image"`);
    const runtimes = Array.isArray(t.runtimes) ? t.runtimes.join(',') : '';
    if (!/^[a-z0-9.,_-]*$/.test(runtimes)) die(`${file}: bad "runtimes"`);
    process.stdout.write(`${name}\t${t.image}\t${file}\t${runtimes || '-'}\n`);
  }
}

const [cmd, ...args] = process.argv.slice(2);
switch (cmd) {
  case 'app':
    if (args.length !== 3) die('usage: app <repoRoot> <workspace> <outDir>');
    stageApp(...args);
    break;
  case 'hash':
    if (args.length < 1) die('usage: hash <dir> [extra...]');
    hashDir(args[0], args.slice(1));
    break;
  case 'templates':
    listTemplates(args[0] ?? '.');
    break;
  case 'version':
    process.stdout.write(readJson(args[0]).version + '\n');
    break;
  default:
    die(`unknown command ${cmd ?? ''}`);
}
