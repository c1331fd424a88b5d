#!/usr/bin/env node
// Conveyor's own `package` step (conveyor.self.yml): stages Conveyor into $CONVEYOR_ROOT, and the
// built-in packager (activities/packaging/builtin-package.ts) turns that tree into the .deb and the
// .rpm. It runs in the build sandbox like any repository's step, with network for the npm registry
// (conveyor.self.yml `sandbox.network`), from a checkout of the pushed commit.
//
// What the package holds:
//   /opt/conveyor/                 the application: its tracked sources (no tests, no benchmarks),
//                                  package.json and the lock file, and production node_modules
//                                  (`npm ci --omit=dev --ignore-scripts`: no install script of any
//                                  dependency runs, the lock file's integrity hashes are checked)
//   /opt/conveyor/node/bin/node    the pinned Node (scripts/with-node.js: the official build from
//                                  the npm registry, checked against its SHA-512). Hosts need no Node
//                                  of their own, and Debian's and EL's own are older than we support.
//   /usr/bin/conveyor              the launcher: that Node, bin/conveyor.js (tsx, no build step)
//   /usr/lib/systemd/system/       conveyor-api, conveyor-orchestrator, conveyor-builder@ units
//   /usr/lib/sysusers.d/conveyor.conf
//   /etc/conveyor/conveyor.yml     the example config, and the three env files (mode 0600, empty
//                                  values): the built-in packager marks everything under /etc as a
//                                  configuration file, so an upgrade keeps an operator's edits.
//
// Size is the cost of shipping a runtime: about 250 MB unpacked, most of it the Node binary and the
// Temporal core bridge (only this architecture's bridge is kept; the others are 115 MB). Hence
// `packaging.builtin.compression: gzip` in conveyor.self.yml: xz takes minutes over this much.
//
// Dependency-free, like bootstrap.js: it runs before node_modules exists.
'use strict';

const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { ensureNode } = require('./with-node');

/** The Node line the package ships (an LTS line pinned in with-node.js). */
const NODE_LINE = '24';
/** Top-level entries of the repository that are the application. */
const APP = [
  'activities',
  'api',
  'bin',
  'cli',
  'common',
  'config',
  'deploy',
  'docs',
  'workers',
  'workflows',
  'README.md',
  'VERSION',
  'package.json',
  'package-lock.json',
  'tsconfig.json',
  'temporal-dev.yml',
  'conveyor.dev.yml',
];
/** Directories inside dependencies that are never loaded at run time (and hold file names, such as
 * `dir with spaces`, that an rpm file list cannot carry). */
const DEAD_DIRS = new Set(['test', 'tests', '__tests__', 'fixture', 'fixtures', 'example', 'examples', '.github']);
const BRIDGE_TARGET = { x64: 'x86_64-unknown-linux-gnu', arm64: 'aarch64-unknown-linux-gnu' };

function fail(message) {
  process.stderr.write(`package-self: ${message}\n`);
  process.exit(1);
}

function run(file, args, options = {}) {
  process.stdout.write(`$ ${file} ${args.join(' ')}\n`);
  const r = spawnSync(file, args, { stdio: 'inherit', ...options });
  if (r.status !== 0) fail(`${file} ${args[0]} failed (${r.status ?? r.signal})`);
}

function write(file, text, mode) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text, { mode });
  fs.chmodSync(file, mode);
}

/** Copies the tracked files under the APP entries, as git has them (modes, symlinks). */
function copySources(src, app) {
  const listed = execFileSync('git', ['-C', src, 'ls-files', '-z', '--', ...APP], { encoding: 'utf8' });
  const files = listed.split('\0').filter(Boolean);
  if (!files.includes('package.json') || !files.includes('VERSION')) fail('not a Conveyor checkout');
  for (const rel of files) {
    const from = path.join(src, rel);
    const to = path.join(app, rel);
    fs.mkdirSync(path.dirname(to), { recursive: true });
    const st = fs.lstatSync(from);
    if (st.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(from), to);
    else {
      fs.copyFileSync(from, to);
      fs.chmodSync(to, st.mode & 0o755);
    }
  }
  return files.length;
}

/** Removes what never runs here: other platforms' core bridges, tests and examples, source maps. */
function prune(modules) {
  const target = BRIDGE_TARGET[process.arch];
  if (!target) fail(`no Temporal core bridge for ${process.arch}`);
  const releases = path.join(modules, '@temporalio', 'core-bridge', 'releases');
  if (!fs.existsSync(path.join(releases, target, 'index.node'))) fail(`the core bridge for ${target} is missing`);
  for (const name of fs.readdirSync(releases)) {
    if (name !== target) fs.rmSync(path.join(releases, name), { recursive: true });
  }
  let removed = 0;
  const visit = (dir, depth) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      // depth > 0: a package's own folders; a package *named* `test` at the top stays.
      if (e.isDirectory() && depth > 0 && DEAD_DIRS.has(e.name)) {
        fs.rmSync(p, { recursive: true });
        removed++;
      } else if (e.isDirectory()) visit(p, e.name.startsWith('@') && depth === 0 ? 0 : depth + 1);
      else if (e.isFile() && e.name.endsWith('.map')) {
        fs.rmSync(p);
        removed++;
      }
    }
  };
  visit(modules, 0);
  return removed;
}

function main() {
  const root = process.env.CONVEYOR_ROOT;
  if (!root) fail('CONVEYOR_ROOT is not set: this is the package step of conveyor.self.yml (built-in packager)');
  const src = process.cwd();
  const app = path.join(root, 'opt', 'conveyor');
  const t0 = Date.now();

  const copied = copySources(src, app);
  const version = fs.readFileSync(path.join(app, 'VERSION'), 'utf8').trim();
  const pkgVersion = JSON.parse(fs.readFileSync(path.join(app, 'package.json'), 'utf8')).version;
  if (version !== pkgVersion) fail(`VERSION says ${version}, package.json says ${pkgVersion}: make them agree`);
  process.stdout.write(`copied ${copied} files of Conveyor ${version}\n`);

  run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: app });
  process.stdout.write(`pruned ${prune(path.join(app, 'node_modules'))} test, example and map entries\n`);

  const nodeDir = ensureNode(NODE_LINE);
  write(path.join(app, 'node', 'bin', 'node'), fs.readFileSync(path.join(nodeDir, 'bin', 'node')), 0o755);
  write(path.join(app, 'node', 'LICENSE'), fs.readFileSync(path.join(nodeDir, 'LICENSE')), 0o644);

  write(
    path.join(root, 'usr', 'bin', 'conveyor'),
    '#!/bin/sh\n# Conveyor on its own Node (/opt/conveyor/node); see /opt/conveyor/README.md.\n' +
      'exec /opt/conveyor/node/bin/node /opt/conveyor/bin/conveyor.js "$@"\n',
    0o755,
  );
  const systemd = path.join(src, 'deploy', 'systemd');
  for (const unit of fs.readdirSync(systemd).filter((f) => f.endsWith('.service'))) {
    write(path.join(root, 'usr', 'lib', 'systemd', 'system', unit), fs.readFileSync(path.join(systemd, unit)), 0o644);
  }
  write(
    path.join(root, 'usr', 'lib', 'sysusers.d', 'conveyor.conf'),
    fs.readFileSync(path.join(systemd, 'conveyor.sysusers.conf')),
    0o644,
  );
  const etc = path.join(root, 'etc', 'conveyor');
  write(path.join(etc, 'conveyor.yml'), fs.readFileSync(path.join(src, 'deploy', 'conveyor.example.yml')), 0o644);
  for (const env of fs.readdirSync(path.join(systemd, 'env'))) {
    write(path.join(etc, env), fs.readFileSync(path.join(systemd, 'env', env)), 0o600);
  }

  // The staged launcher and the units' entry points must load from the pruned tree before anything
  // is packaged: `--help` of each imports its whole module graph (the core bridge included).
  const node = path.join(app, 'node', 'bin', 'node');
  const check = spawnSync(node, [path.join(app, 'bin', 'conveyor.js'), '--version'], { encoding: 'utf8' });
  if (check.status !== 0 || check.stdout.trim() !== version) {
    fail(`the staged conveyor --version said ${JSON.stringify((check.stdout + check.stderr).trim())}, not ${version}`);
  }
  for (const entry of ['workers/orchestrator.ts', 'workers/builder.ts', 'api/main.ts']) {
    const r = spawnSync(node, ['--require', 'tsx/cjs', entry, '--help'], { cwd: app, encoding: 'utf8' });
    if (r.status !== 0 || !r.stdout.includes('--config')) {
      fail(`the staged ${entry} --help failed (${r.status ?? r.signal}): ${(r.stdout + r.stderr).trim().slice(-600)}`);
    }
  }
  process.stdout.write(`staged Conveyor ${version} with Node ${NODE_LINE} in ${Date.now() - t0} ms\n`);
}

main();
