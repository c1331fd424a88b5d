// Local staging hosts: real Debian systems made with debootstrap, one directory each, so the deploy
// stage upgrades them with their own apt-get or dnf from the published repository over loopback,
// exactly as a real host would (shared/DESIGN.md "Real parts"). Every command runs inside its host
// through bubblewrap (hostCommand): the host's directory is the root of its own mount namespace, so
// nothing in a host, root included, reaches this machine's files. A plain chroot did not hold: a
// static binary run as root in it left it with mkdir + chroot + `cd ..`.
//
// Cost (shared/FACTS.md): debootstrap takes ~30 s and ~200 MB, `cp -a` of the result ~0.5 s. So a
// base root is made once per machine and format, cached, and copied per host. Bases are built in
// a temp directory and renamed into place: a crash or a cancelled activity never leaves a half
// base that later hosts would be copied from. Two processes building the same base at once both
// work and the second rename loses (its copy is dropped); within one process builds are shared.
//
// rpm hosts are Debian roots with Debian's rpm and dnf (installed by debootstrap itself, so the
// build needs the mirror but no DNS inside the host) plus a `host-base` noarch rpm in their rpm
// database that provides what a real EL base system does (/bin/sh, bash, coreutils): without it
// any package with scripts fails with "nothing provides /bin/sh" (FACTS.md).
//
// Hosts keep their installed state across restarts (they are directories); resetLocalHost removes
// one so the next ensureLocalHost copies it afresh from the base.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runChecked, runProcess } from '../exec/process';
import { HOST_PATH } from './executor';
import type { PackageFormat } from './types';

/** The Debian release of every local host, whatever the distro is called in conveyor.yml. */
export const LOCAL_SUITE = 'bookworm';
/** Bumped whenever a base is made differently, so older caches are not used. */
const LAYOUT = 1;
const BASE_MARKER = '.conveyor-base';
const HOST_BASE_RPM = 'host-base-1-1.noarch.rpm';

export interface LocalHostOptions {
  /** Where the base roots are cached; default the directory holding `root`. */
  baseDir?: string;
  signal?: AbortSignal;
  /** Progress for heartbeats: debootstrap runs for a minute and prints as it goes. */
  onProgress?: (details: Record<string, unknown>) => void;
  log?: (message: string, meta?: Record<string, unknown>) => void;
}

export interface EnsureLocalHostResult {
  root: string;
  /** False when the host already existed (its installed packages are kept). */
  created: boolean;
  base: string;
  /** How long making the base took, when this call made it. */
  baseBuiltMs?: number;
}

export function basePath(baseDir: string, format: PackageFormat): string {
  return path.join(baseDir, `.base-${LOCAL_SUITE}-${format}-v${LAYOUT}`);
}

/** Capabilities a host's root keeps: what apt-get, dpkg, rpm and dnf need to install packages as
 * root inside the host (own files, other users' files, drop to `_apt`, set file capabilities) and
 * nothing that reaches past the host's root: no CAP_SYS_ADMIN (mounts), CAP_MKNOD (there is no
 * device cgroup here: a block device node would read this machine's disk), CAP_DAC_READ_SEARCH
 * (open_by_handle_at reaches any file of the filesystem), CAP_NET_ADMIN/CAP_NET_RAW (the network
 * namespace is this machine's), CAP_SYS_PTRACE or CAP_SYS_MODULE. CAP_SYS_CHROOT stays: a chroot
 * inside the host is harmless once the host's root is the root of its own mount namespace (the
 * escape test runs with it, so it proves the mount isolation, not a missing capability). bwrap
 * sets no_new_privs, so no setuid binary or file capability inside can add to this set. */
export const HOST_CAPABILITIES = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_SETFCAP',
  'CAP_SYS_CHROOT',
] as const;

export interface HostCommand {
  file: string;
  args: string[];
  /** Always empty: bwrap's own init (PID 1 of the host's PID namespace) keeps the environment
   * bwrap was started with, readable from inside as /proc/1/environ (shared/FACTS.md), so
   * values travel as --setenv arguments only. */
  env: NodeJS.ProcessEnv;
}

/** How to run `script` with /bin/sh inside the host at `root`, as root of that host only.
 *
 * bubblewrap makes `root` the root of a new mount namespace (pivot_root, not chroot: a static
 * binary's classic mkdir + chroot + `cd ..` escape ends at the host's own root, because there is
 * no directory above it in that namespace), with a fresh /proc of its own PID namespace and a
 * minimal /dev (no disks), its own IPC and UTS (hostname = the host's name), the capabilities of
 * HOST_CAPABILITIES only, and --die-with-parent plus --new-session. The network namespace is
 * shared on purpose: a local host reaches the local S3 endpoint on 127.0.0.1 like a real host
 * reaches S3. When the worker kills bwrap (cancellation, timeout) PID 1 of the host's namespace
 * dies and the kernel kills every process the script started. */
export function hostCommand(
  root: string,
  script: string,
  env: Record<string, string> = {},
  opts: { hostname?: string; infoFd?: number } = {},
): HostCommand {
  const vars = { PATH: HOST_PATH, HOME: '/root', LANG: 'C.UTF-8', TERM: 'dumb', ...env };
  return {
    file: bwrapPath(),
    args: [
      '--bind',
      root,
      '/',
      '--proc',
      '/proc',
      '--dev',
      '/dev',
      '--unshare-pid',
      '--unshare-ipc',
      '--unshare-uts',
      '--unshare-cgroup-try',
      ...(opts.hostname ? ['--hostname', opts.hostname] : []),
      '--die-with-parent',
      '--new-session',
      ...(opts.infoFd !== undefined ? ['--info-fd', String(opts.infoFd)] : []),
      '--cap-drop',
      'ALL',
      ...HOST_CAPABILITIES.flatMap((c) => ['--cap-add', c]),
      '--chdir',
      '/root',
      '--clearenv',
      ...Object.entries(vars).flatMap(([k, v]) => ['--setenv', k, v]),
      '/bin/sh',
      '-c',
      script,
    ],
    env: {},
  };
}

let bwrapFound: string | undefined;

/** bwrap is started from an empty environment, so it is found on this process's PATH first. */
export function bwrapPath(env: NodeJS.ProcessEnv = process.env): string {
  if (bwrapFound) return bwrapFound;
  const dirs = [...(env.PATH ?? '').split(path.delimiter).filter(Boolean), '/usr/bin', '/bin'];
  for (const dir of dirs) {
    const file = path.join(dir, 'bwrap');
    try {
      fs.accessSync(file, fs.constants.X_OK);
      bwrapFound = file;
      return file;
    } catch {
      /* next */
    }
  }
  throw new Error(
    'bwrap not found: local staging hosts run their commands with bubblewrap (apt-get install bubblewrap, ' +
      'or scripts/bootstrap.js)',
  );
}

/** The Debian mirror this machine's own apt sources name for the local suite (deb822 `.sources`
 * files first, then sources.list). Never hard-coded: a machine behind a mirror must use it. */
export function debianMirror(etcApt = '/etc/apt'): string {
  const candidates: { uri: string; suites: string[] }[] = [];
  const dir = path.join(etcApt, 'sources.list.d');
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
  for (const f of files.filter((x) => x.endsWith('.sources'))) {
    const text = fs.readFileSync(path.join(dir, f), 'utf8');
    for (const stanza of text.split(/\n\s*\n/)) {
      const field = (name: string) =>
        new RegExp(`^${name}:[ \\t]*(.*)$`, 'mi').exec(stanza)?.[1]?.trim().split(/\s+/).filter(Boolean) ?? [];
      if (!field('Types').includes('deb')) continue;
      if (field('Enabled')[0]?.toLowerCase() === 'no') continue;
      for (const uri of field('URIs')) candidates.push({ uri, suites: field('Suites') });
    }
  }
  const lists = [
    path.join(etcApt, 'sources.list'),
    ...files.filter((x) => x.endsWith('.list')).map((f) => path.join(dir, f)),
  ];
  for (const file of lists.filter((f) => fs.existsSync(f))) {
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      const m = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line);
      if (m) candidates.push({ uri: m[1], suites: [m[2]] });
    }
  }
  const usable = candidates.filter((c) => /^https?:\/\//.test(c.uri));
  const chosen = usable.find((c) => c.suites.includes(LOCAL_SUITE)) ?? usable[0];
  if (!chosen) {
    throw new Error(
      `no Debian mirror in ${etcApt}/sources.list.d/*.sources or ${etcApt}/sources.list: ` +
        `local staging hosts are made with debootstrap from the mirror this machine uses`,
    );
  }
  return chosen.uri;
}

const building = new Map<string, Promise<number | undefined>>();

/** Makes the cached base root of a format unless it exists; resolves to how long that took. */
export function ensureBase(
  baseDir: string,
  format: PackageFormat,
  opts: LocalHostOptions = {},
): Promise<number | undefined> {
  const base = basePath(baseDir, format);
  if (fs.existsSync(path.join(base, BASE_MARKER))) return Promise.resolve(undefined);
  let pending = building.get(base);
  if (!pending) {
    pending = buildBase(base, format, opts).finally(() => building.delete(base));
    building.set(base, pending);
  }
  return pending;
}

async function buildBase(base: string, format: PackageFormat, opts: LocalHostOptions): Promise<number> {
  const started = Date.now();
  fs.mkdirSync(path.dirname(base), { recursive: true });
  const tmp = fs.mkdtempSync(`${base}.build-`);
  const root = path.join(tmp, 'root');
  const logFile = path.join(tmp, 'build.log');
  try {
    const mirror = debianMirror();
    opts.log?.('making a base root with debootstrap (once per machine)', { base, mirror, format });
    const include = format === 'rpm' ? ['--include=rpm,dnf'] : [];
    const boot = await runProcess('debootstrap', ['--variant=minbase', ...include, LOCAL_SUITE, root, mirror], {
      logFile,
      signal: opts.signal,
      heartbeatMs: 5000,
      onTick: (elapsedMs, bytes) => opts.onProgress?.({ phase: 'debootstrap', format, elapsedMs, bytes }),
    });
    opts.signal?.throwIfAborted();
    if (boot.exitCode !== 0) {
      throw new Error(
        `debootstrap ${LOCAL_SUITE} from ${mirror} failed (${boot.exitCode ?? boot.signal}):\n${boot.tail}`,
      );
    }
    // Package scripts must not try to start services in a directory.
    fs.writeFileSync(path.join(root, 'usr/sbin/policy-rc.d'), '#!/bin/sh\nexit 101\n', { mode: 0o755 });
    fs.mkdirSync(path.join(root, 'etc/apt/keyrings'), { recursive: true });
    if (format === 'rpm') await addRpmBase(root, tmp, opts.signal);
    fs.writeFileSync(
      path.join(root, BASE_MARKER),
      `${JSON.stringify({ suite: LOCAL_SUITE, format, layout: LAYOUT, mirror, builtAt: new Date().toISOString() })}\n`,
    );
    try {
      fs.renameSync(root, base);
    } catch (err) {
      // Another process finished the same base first: use theirs.
      if (!fs.existsSync(path.join(base, BASE_MARKER))) throw err;
    }
    const ms = Date.now() - started;
    opts.log?.('base root ready', { base, ms });
    return ms;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** rpm's database at the path an EL host has (Debian's rpm defaults to ~/.rpmdb), dnf's
 * $releasever (no system-release package says it) and the host-base package. */
async function addRpmBase(root: string, tmp: string, signal?: AbortSignal): Promise<void> {
  fs.mkdirSync(path.join(root, 'etc/rpm'), { recursive: true });
  fs.writeFileSync(path.join(root, 'etc/rpm/macros.dbpath'), '%_dbpath /var/lib/rpm\n');
  fs.mkdirSync(path.join(root, 'var/lib/rpm'), { recursive: true });
  fs.mkdirSync(path.join(root, 'etc/dnf/vars'), { recursive: true });
  fs.writeFileSync(path.join(root, 'etc/dnf/vars/releasever'), '9\n');
  fs.mkdirSync(path.join(root, 'etc/yum.repos.d'), { recursive: true });
  const rpm = await buildHostBaseRpm(path.join(tmp, 'rpmbuild'), signal);
  fs.copyFileSync(rpm, path.join(root, 'tmp', HOST_BASE_RPM));
  const cmd = hostCommand(root, `rpm -i /tmp/${HOST_BASE_RPM} && rm /tmp/${HOST_BASE_RPM} && rpm -q host-base`);
  await runChecked(cmd.file, cmd.args, { env: cmd.env, signal });
}

/** A noarch rpm with no files that provides what a base system does (shared/FACTS.md). */
async function buildHostBaseRpm(top: string, signal?: AbortSignal): Promise<string> {
  fs.mkdirSync(path.join(top, 'SPECS'), { recursive: true });
  const spec = path.join(top, 'SPECS', 'host-base.spec');
  fs.writeFileSync(
    spec,
    [
      'Name: host-base',
      'Version: 1',
      'Release: 1',
      'Summary: What the base system of a local Conveyor staging host provides',
      'License: Apache-2.0',
      'BuildArch: noarch',
      'Provides: /bin/sh, /bin/bash, /usr/bin/sh, /usr/bin/bash, bash, coreutils',
      '%description',
      'The rpm database of a Debian root with rpm and dnf is empty; this package stands for the',
      'shell and tools that a real base system registers there.',
      '%files',
      '',
    ].join('\n'),
  );
  await runChecked('rpmbuild', ['--define', `_topdir ${top}`, '--quiet', '-bb', spec], { signal });
  return path.join(top, 'RPMS', 'noarch', HOST_BASE_RPM);
}

const making = new Map<string, Promise<EnsureLocalHostResult>>();

/** Makes the host at `root` (a copy of the format's base) unless it exists. Idempotent. */
export function ensureLocalHost(
  root: string,
  format: PackageFormat,
  opts: LocalHostOptions = {},
): Promise<EnsureLocalHostResult> {
  const abs = path.resolve(root);
  let pending = making.get(abs);
  if (!pending) {
    pending = makeHost(abs, format, opts).finally(() => making.delete(abs));
    making.set(abs, pending);
  }
  return pending;
}

async function makeHost(root: string, format: PackageFormat, opts: LocalHostOptions): Promise<EnsureLocalHostResult> {
  const baseDir = path.resolve(opts.baseDir ?? path.dirname(root));
  const base = basePath(baseDir, format);
  if (isHostRoot(root)) {
    if (format === 'rpm' && !fs.existsSync(path.join(root, 'usr/bin/dnf'))) {
      throw new Error(`local host ${root} was made for deb packages (no dnf in it): reset it to make it an rpm host`);
    }
    return { root, created: false, base };
  }
  if (fs.existsSync(root) && fs.readdirSync(root).length > 0) {
    throw new Error(`${root} exists and is not a Debian root: refusing to make a local host there`);
  }
  const baseBuiltMs = await ensureBase(baseDir, format, opts);
  fs.mkdirSync(path.dirname(root), { recursive: true });
  const tmp = `${root}.tmp-${crypto.randomBytes(4).toString('hex')}`;
  try {
    opts.onProgress?.({ phase: 'copy-base', root });
    await runChecked('cp', ['-a', '--reflink=auto', base, tmp], { signal: opts.signal });
    personalize(tmp, path.basename(root));
    fs.renameSync(tmp, root);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  opts.log?.('local host made', { root, base });
  return { root, created: true, base, baseBuiltMs };
}

/** Name service does not matter to a local host: everything it reaches is on loopback. An empty
 * resolv.conf makes an accidental lookup fail at once instead of leaking to this machine's DNS. */
function personalize(root: string, name: string): void {
  fs.rmSync(path.join(root, BASE_MARKER), { force: true });
  fs.writeFileSync(path.join(root, 'etc/hostname'), `${name}\n`);
  fs.writeFileSync(path.join(root, 'etc/hosts'), `127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\t${name}\n`);
  fs.rmSync(path.join(root, 'etc/resolv.conf'), { force: true });
  fs.writeFileSync(path.join(root, 'etc/resolv.conf'), '# Conveyor local staging host: loopback only.\n');
}

export function isHostRoot(root: string): boolean {
  return fs.existsSync(path.join(root, 'etc/debian_version')) && !fs.existsSync(path.join(root, BASE_MARKER));
}

/** Removes a local host (`conveyor dev --reset-hosts`); the next deploy copies it afresh.
 * Resolves to false when there was nothing to remove. */
export async function resetLocalHost(root: string): Promise<boolean> {
  const abs = path.resolve(root);
  if (!fs.existsSync(abs)) return false;
  if (abs === '/' || !isHostRoot(abs)) throw new Error(`${abs} is not a local host root: not removing it`);
  // Commands run in private mount namespaces, so nothing should be mounted inside; if something
  // is (a hand-made bind mount), removing files would reach through it.
  const mounts = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m): m is string => Boolean(m) && (m === abs || m.startsWith(`${abs}/`)));
  if (mounts.length > 0) throw new Error(`${abs} has mounts inside (${mounts.join(', ')}): unmount them first`);
  await fs.promises.rm(abs, { recursive: true, force: true });
  return true;
}

/** The per-user cache of base roots: `${XDG_CACHE_HOME:-~/.cache}/conveyor/hosts`. */
export function defaultBaseDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'conveyor', 'hosts');
}
