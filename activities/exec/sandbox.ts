// The sandbox every repository step (unit, integration, package, docs, e2e) runs in on a build
// worker. Repository code is hostile: it may read what it can, connect where it can, fork and
// allocate without end and leave processes behind. Under bubblewrap it gets:
//
// - its own user, PID, IPC, UTS, network and (where the kernel has it) cgroup namespaces, and no
//   further user namespaces (--disable-userns); a fresh /proc that lists only its own processes, a
//   minimal /dev, --die-with-parent and --new-session;
// - read-only /usr, /etc, /opt and the merged-/usr links (/bin, /lib, …), and a read-only root;
//   writable only the checkout (/work/src), $CONVEYOR_OUT (/work/out), directories the activity adds
//   (/work/root for $CONVEYOR_ROOT), `binds` a caller asks for, and private tmpfs mounts /tmp,
//   /var/tmp, /dev/shm and $HOME (/home/conveyor). The builder's own files (the project checkout,
//   `.dev/`, ~/.cache, /root, the workspace root with other steps' directories) are not in its
//   mount namespace at all;
// - an unprivileged uid, also as the host sees it. A bwrap started as root with --unshare-user
//   maps the sandbox's uid to root outside: the step's files would be root's and it could read
//   every root-owned file mounted in. So the builder drops to `sandbox.uid` (default 65534) with
//   `setpriv --reuid --regid --clear-groups --no-new-privs` first, and bwrap runs unprivileged: the
//   user namespace it makes belongs to that uid and maps it to itself, files the step writes are
//   owned by that uid on the host, and it has no capability outside. The workspace is chowned to
//   that uid. (A non-root builder runs bwrap as its own uid: still not root, but the step is then
//   the builder's user, and only rlimits and the disk watcher limit it.) bwrap resolves the bind
//   sources as that uid, so the workspace root must be traversable (o+x) by it: the probe checks.
// - an empty environment for bwrap itself: bwrap's PID 1 inside the namespace keeps the
//   environment bwrap was started with and the step can read it (/proc/1/environ), --clearenv or
//   not (shared/FACTS.md). bwrap is spawned with `env: {}` and through `env -i` (dash exports PWD),
//   and the step's variables are passed only with --setenv, inside an --args file, so its command
//   line shows no host path either.
// - no network unless conveyor.yml asks for it (`sandbox.network`: true or a list of steps). Then
//   slirp4netns (sandbox-network.ts), not pasta: slirp4netns has an explicit --disable-host-loopback,
//   attaches to an existing namespace by PID with a ready fd, sandboxes and seccomp-filters itself;
//   pasta (bookworm's 2023 build) forwards ports from the namespace's loopback to the host's by
//   default (-T auto), the very thing to prevent, and is safe only with the right set of opt-outs.
//   Routes inside the namespace make the builder's other addresses unreachable too.
// - limits (conveyor.yml `sandbox.limits`, defaults in common/sandbox.ts); bwrap has none. Which
//   mechanism holds is probed once per worker (`describe()` says which, the builder logs it):
//   * memory and processes: a cgroup per step (sandbox-cgroup.ts): v2 memory.max/pids.max, or v1
//     memory.limit_in_bytes/pids.max (this machine kind: hybrid, v1 controllers writable by root,
//     PID 1 is not systemd, so no `systemd-run --scope`). The step's first process joins it before
//     it execs bwrap, so nothing escapes it. oom_kill in memory.events/memory.oom_control and max in
//     pids.events say which limit was hit. Without cgroups: RLIMIT_AS and RLIMIT_NPROC (prlimit),
//     per process and per real uid, which is why the sandbox uid should be one no other process uses;
//     the kernel then just refuses the allocation or fork, and the message cannot name the limit.
//   * disk: the workspace is a loop-mounted ext4 file system of diskMb (root), else a directory whose
//     usage is watched every second (sandbox-volume.ts); RLIMIT_FSIZE caps any single file at diskMb.
//   * CPU time (optional cpuSeconds): the cgroup's usage, watched every second; else RLIMIT_CPU.
//   Hitting a limit fails the step, naming it: "step unit exceeded the memory limit of 256 MB
//   (sandbox.limits.memoryMb)", also when the step's own exit code was 0.
// - nothing left behind: bwrap's PID 1 dies with the step (and with bwrap: --die-with-parent), which
//   kills every process of the PID namespace, `setsid` daemons included; then every process still in
//   the step's cgroup is killed and the cgroup removed. Timeouts, cancellation and limits kill the
//   process group (process.ts), which takes bwrap, and PID 1 itself (its PID from --info-fd): the
//   parent-death signal alone misses a kill that comes right after the start (namespace-init.ts).
//
// Where namespaces cannot be made (an unprivileged container, user namespaces switched off), the
// probe fails and steps are refused with the reason (FailureType.SandboxUnavailable), unless the
// repository sets `sandbox: { mode: none }`: its steps then run as before (`sh -c` as the builder's
// user, with stepEnv's minimal environment), and the run's status says `sandbox: none`.
import { type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../common/failures';
import type { SandboxLimits } from '../../common/types';
import { readNamespaceInit, type NamespaceInit } from './namespace-init';
import { runProcess, type RunOptions, type RunOutcome } from './process';
import {
  createStepCgroup,
  probeCgroups,
  type CgroupLayout,
  type CgroupProbeInput,
  type StepCgroup,
} from './sandbox-cgroup';
import { startNetwork, type NetworkTools, type SandboxNetwork } from './sandbox-network';
import { createVolume, probeLoopVolume, type DiskMechanism, type SandboxVolume } from './sandbox-volume';

/** Extra mounts for one `ws.run`. Sources are host paths the sandbox uid can traverse to (bwrap
 * resolves them as that uid); a directory or a file (a socket's directory, a helper program). */
export interface StepRunOptions {
  binds?: { src: string; dest: string; readOnly?: boolean }[];
}

/** Paths as the step sees them. */
export const INSIDE = {
  src: '/work/src',
  out: '/work/out',
  home: '/home/conveyor',
  /** A further writable directory of the workspace (`ws.writableDir(name)`). */
  dir: (name: string) => `/work/${name}`,
};

const SANDBOX_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const MB = 1024 * 1024;
const WATCH_MS = 1000;

export interface SandboxHostOptions {
  /** bwrap to run (default: `bwrap` on PATH). Tests point it at a stand-in to force the refusal. */
  bwrap?: string;
  /** The uid and gid steps run as when the builder is root (conveyor.yml top-level `sandbox`). */
  uid?: number;
  gid?: number;
  /** Where workspaces are made (conveyor.yml `workspace`); the probe checks bwrap can bind from there. */
  workspaceRoot?: string;
  /** false: no cgroups even where they exist (tests of the fallbacks); an object: what to parse. */
  cgroups?: CgroupProbeInput | false;
  /** Force a disk mechanism (tests of the watcher). */
  disk?: DiskMechanism;
}

interface Tools {
  sh: string;
  env: string;
  prlimit: string;
  setpriv?: string;
  chown: string;
}

export interface SandboxReady {
  ok: true;
  bwrap: string;
  uid: number;
  gid: number;
  /** The builder is root and drops to uid/gid before bwrap. */
  dropPrivileges: boolean;
  disableUserns: boolean;
  cgroups?: CgroupLayout;
  disk: DiskMechanism;
  network?: NetworkTools;
  tools: Tools;
  description: string;
}

export type SandboxProbe = SandboxReady | { ok: false; reason: string; description: string };

export interface SandboxRunRequest {
  step: string;
  command: string;
  /** Every variable the step sees (nothing else reaches it). */
  env: Record<string, string>;
  volume: SandboxVolume;
  /** Writable directories of the volume and where the step sees them. */
  mounts: { host: string; inside: string }[];
  cwd: string;
  binds?: StepRunOptions['binds'];
  network: boolean;
  limits: SandboxLimits;
  /** A private directory of the builder's for the sandbox's own files (never mounted). */
  scratch: string;
  run: Pick<RunOptions, 'logFile' | 'signal' | 'timeoutMs' | 'heartbeatMs' | 'onTick'>;
}

export interface SandboxOutcome extends RunOutcome {
  /** One sentence per limit the step hit, e.g. "the memory limit of 256 MB (sandbox.limits.memoryMb)". */
  limitsHit: string[];
}

export interface SandboxHost {
  /** Probes once (memoized): can this worker sandbox steps, and with which mechanisms. */
  probe(): Promise<SandboxProbe>;
  /** Makes the workspace volume of one step in `dir` (a fresh private directory). */
  volume(dir: string, limits: SandboxLimits, signal?: AbortSignal): Promise<SandboxVolume>;
  /** Gives `paths` (recursively) to the sandbox uid. */
  own(paths: string[]): Promise<void>;
  run(req: SandboxRunRequest): Promise<SandboxOutcome>;
  uid(): Promise<{ uid: number; gid: number }>;
}

function which(bin: string, extra: string[] = []): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/usr/bin', '/sbin', '/bin', ...extra];
  for (const dir of dirs) {
    if (!dir) continue;
    const p = path.join(dir, bin);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/** The name of `uid` in the host's /etc/passwd (the sandbox sees the same file), for $USER. */
function userName(uid: number): string {
  try {
    for (const line of fs.readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const [name, , id] = line.split(':');
      if (id !== undefined && Number(id) === uid) return name;
    }
  } catch {
    /* no passwd */
  }
  return 'conveyor';
}

/** Everything a sandboxed step sees in its environment: a fixed base, the step's variables, and
 * CONVEYOR_WORKSPACE / CONVEYOR_OUT as paths inside the sandbox. Nothing of the worker's own. */
export function sandboxEnv(env: Record<string, string>, uid: number): Record<string, string> {
  const user = userName(uid);
  return {
    PATH: SANDBOX_PATH,
    HOME: INSIDE.home,
    TMPDIR: '/tmp',
    LANG: 'C.UTF-8',
    SHELL: '/bin/sh',
    USER: user,
    LOGNAME: user,
    ...env,
    CONVEYOR_WORKSPACE: INSIDE.src,
    CONVEYOR_OUT: INSIDE.out,
  };
}

export function createSandboxHost(opts: SandboxHostOptions = {}): SandboxHost {
  let probed: Promise<SandboxProbe> | undefined;
  const probe = () => (probed ??= probeSandbox(opts));
  const ready = async (): Promise<SandboxReady> => {
    const p = await probe();
    if (!p.ok) throw new Error(`sandbox unavailable: ${p.reason}`);
    return p;
  };
  return {
    probe,
    async volume(dir, limits, signal) {
      const p = await ready();
      return createVolume(dir, p.disk, limits.diskMb, signal);
    },
    async own(paths) {
      const p = await ready();
      if (!p.dropPrivileges || paths.length === 0) return;
      const r = await runProcess(p.tools.chown, ['-R', '-h', `${p.uid}:${p.gid}`, '--', ...paths], { env: {} });
      if (r.exitCode !== 0) throw new Error(`chown of the workspace failed: ${r.output.trim().slice(-500)}`);
    },
    async run(req) {
      return runSandboxed(await ready(), req);
    },
    async uid() {
      const p = await ready();
      return { uid: p.uid, gid: p.gid };
    },
  };
}

/** The refusal when the probe failed and the repository did not opt out. */
export function sandboxRefusal(step: string, repository: string | undefined, reason: string): ApplicationFailure {
  const repo = repository ?? 'this repository';
  return ApplicationFailure.create({
    type: FailureType.SandboxUnavailable,
    nonRetryable: true,
    message:
      `refusing to run the ${step} step of ${repo}: repository code runs only in a sandbox, and this build ` +
      `worker cannot create one (${reason}). Fix the worker (see README, Sandbox), or set ` +
      `\`sandbox: { mode: none }\` for ${repo} in conveyor.yml to run its steps unsandboxed as the worker's ` +
      'user (every run then says so in its status).',
  });
}

async function probeSandbox(opts: SandboxHostOptions): Promise<SandboxProbe> {
  const fail = (reason: string): SandboxProbe => ({ ok: false, reason, description: `no sandbox: ${reason}` });
  const bwrap = opts.bwrap ?? which('bwrap');
  if (!bwrap) return fail('bubblewrap is not installed (apt-get install bubblewrap)');
  const isRoot = process.getuid?.() === 0;
  const tools = {
    sh: fs.existsSync('/bin/sh') ? '/bin/sh' : which('sh'),
    env: which('env'),
    prlimit: which('prlimit'),
    setpriv: which('setpriv'),
    chown: which('chown'),
  };
  for (const [name, p] of Object.entries(tools)) {
    if (!p && (name !== 'setpriv' || isRoot)) return fail(`${name} is not installed (util-linux, coreutils)`);
  }
  const uid = isRoot ? (opts.uid ?? 65534) : (process.getuid?.() ?? 65534);
  const gid = isRoot ? (opts.gid ?? 65534) : (process.getgid?.() ?? 65534);
  if (uid === 0 || gid === 0) return fail('the sandbox uid and gid must not be 0');

  const root = opts.workspaceRoot ?? path.join(os.tmpdir(), 'conveyor-work');
  fs.mkdirSync(root, { recursive: true });
  const notes: string[] = [];
  const cg =
    opts.cgroups === false ? { notes: ['cgroups off'] } : isRoot ? probeCgroups(opts.cgroups) : { notes: ['not root'] };
  let disk: DiskMechanism = opts.disk ?? 'loop';
  if (disk === 'loop') {
    const why = await probeLoopVolume(root);
    if (why) {
      disk = 'watch';
      notes.push(`no loop volumes (${why})`);
    }
  }
  const netTools = { slirp4netns: which('slirp4netns'), nsenter: which('nsenter'), ip: which('ip') };
  const network =
    isRoot && netTools.slirp4netns && netTools.nsenter && netTools.ip ? (netTools as NetworkTools) : undefined;

  const base: SandboxReady = {
    ok: true,
    bwrap,
    uid,
    gid,
    dropPrivileges: isRoot,
    disableUserns: true,
    cgroups: cg.layout,
    disk,
    network,
    tools: tools as Tools,
    description: '',
  };
  // The real thing, once: a step binding a directory of the workspace root, as the sandbox uid.
  let attempt = await tryRun(base, root);
  if (!attempt.ok && /disable-userns/.test(attempt.reason)) {
    notes.push('this bwrap has no --disable-userns (older than 0.8.0): the step could nest user namespaces');
    attempt = await tryRun({ ...base, disableUserns: false }, root);
  }
  if (!attempt.ok && base.cgroups) {
    const without = await tryRun({ ...base, cgroups: undefined }, root);
    if (without.ok) {
      notes.push(`joining the step's cgroup failed (${attempt.reason}); rlimits only`);
      attempt = without;
    }
  }
  if (!attempt.ok) return fail(explain(attempt.reason, uid, root));
  const p = attempt.probe;
  const parents = p.cgroups?.parents ?? {};
  const mech = (c: 'memory' | 'pids' | 'cpu', fallback: string) =>
    parents[c] ? `cgroup v${p.cgroups?.version} (${path.dirname(parents[c])})` : fallback;
  p.description = [
    `bubblewrap (${bwrap}) as uid ${uid}:${gid}${p.dropPrivileges ? ' (setpriv from root)' : " (the worker's own uid)"}`,
    `memory: ${mech('memory', 'RLIMIT_AS per process')}`,
    `processes: ${mech('pids', `RLIMIT_NPROC of uid ${uid}`)}`,
    `cpu time: ${mech('cpu', 'RLIMIT_CPU per process')}`,
    `disk: ${p.disk === 'loop' ? 'loop-mounted ext4 per step' : 'usage watched every second, RLIMIT_FSIZE'}`,
    `network on request: ${p.network ? 'slirp4netns' : 'unavailable (needs root, slirp4netns, nsenter, ip)'}`,
    ...(p.cgroups ? [] : cg.notes),
    ...notes,
  ].join('; ');
  return p;
}

function explain(reason: string, uid: number, root: string): string {
  if (/Can't find source path/.test(reason)) {
    return `uid ${uid} cannot reach the workspace root ${root} (bwrap resolves bind mounts as that uid: make its parents o+x, or set \`workspace\` elsewhere): ${reason}`;
  }
  if (/namespace|uid map|Operation not permitted|setting up/i.test(reason)) {
    return `user namespaces are not available to unprivileged users here (an unprivileged container, user.max_user_namespaces=0, or an AppArmor restriction on unprivileged user namespaces): ${reason}`;
  }
  return reason;
}

async function tryRun(
  p: SandboxReady,
  root: string,
): Promise<{ ok: true; probe: SandboxReady } | { ok: false; reason: string }> {
  const dir = fs.mkdtempSync(path.join(root, '.probe-sandbox-'));
  try {
    fs.chmodSync(dir, 0o711);
    const vol = path.join(dir, 'vol');
    const src = path.join(vol, 'src');
    fs.mkdirSync(src, { recursive: true });
    if (p.dropPrivileges) fs.chownSync(src, p.uid, p.gid);
    const volume: SandboxVolume = {
      path: vol,
      mechanism: 'watch',
      limitBytes: 64 * MB,
      sample: () => ({ usedBytes: 0, full: false }),
      release: () => Promise.resolve(),
    };
    const r = await runSandboxed(p, {
      step: 'probe',
      command: `test "$(id -u)" = ${p.uid} && touch ${INSIDE.src}/ok && echo sandbox-ok`,
      env: { PATH: SANDBOX_PATH },
      volume,
      mounts: [{ host: src, inside: INSIDE.src }],
      cwd: INSIDE.src,
      network: false,
      limits: { memoryMb: 256, pids: 64, diskMb: 64 },
      scratch: dir,
      run: { timeoutMs: 30_000 },
    });
    if (r.exitCode === 0 && r.output.includes('sandbox-ok') && fs.existsSync(path.join(src, 'ok'))) {
      return { ok: true, probe: p };
    }
    return { ok: false, reason: r.output.trim().split('\n').slice(-3).join(' ').slice(0, 400) || `exit ${r.exitCode}` };
  } catch (err) {
    return { ok: false, reason: (err as Error).message.slice(0, 400) };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function bwrapArgs(
  p: SandboxReady,
  req: SandboxRunRequest,
  fds: { info: number; block?: number; resolv?: number },
): string[] {
  const a = ['--unshare-user'];
  if (p.disableUserns) a.push('--disable-userns');
  a.push('--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-net', '--unshare-cgroup-try');
  a.push('--die-with-parent', '--new-session', '--hostname', 'conveyor-sandbox');
  a.push('--ro-bind', '/usr', '/usr');
  // Debian's merged /usr: /bin, /lib, … are links into /usr; on other layouts they are directories.
  for (const d of ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32']) {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(d);
    } catch {
      continue;
    }
    if (st.isSymbolicLink()) a.push('--symlink', fs.readlinkSync(d), d);
    else if (st.isDirectory()) a.push('--ro-bind', d, d);
  }
  a.push('--ro-bind', '/etc', '/etc', '--ro-bind-try', '/opt', '/opt');
  a.push('--proc', '/proc', '--dev', '/dev');
  // tmpfs pages count against the step's memory cgroup; the size caps them where no cgroup holds.
  const tmpfsSize = String(req.limits.memoryMb * MB);
  a.push('--size', tmpfsSize, '--perms', '1777', '--tmpfs', '/tmp');
  a.push('--size', tmpfsSize, '--perms', '1777', '--tmpfs', '/var/tmp');
  a.push('--size', tmpfsSize, '--perms', '1777', '--tmpfs', '/dev/shm');
  a.push('--size', tmpfsSize, '--perms', '0700', '--tmpfs', INSIDE.home);
  for (const m of req.mounts) a.push('--bind', m.host, m.inside);
  for (const b of req.binds ?? []) a.push(b.readOnly ? '--ro-bind' : '--bind', b.src, b.dest);
  if (fds.resolv !== undefined) a.push('--perms', '0644', '--ro-bind-data', String(fds.resolv), '/etc/resolv.conf');
  // bwrap builds the tree on a tmpfs the step's uid owns: read-only once built, so the mounts above
  // are all the step can write.
  a.push('--remount-ro', '/');
  a.push('--chdir', req.cwd, '--clearenv');
  for (const [k, v] of Object.entries(req.env)) a.push('--setenv', k, v);
  a.push('--info-fd', String(fds.info));
  if (fds.block !== undefined) a.push('--block-fd', String(fds.block));
  return a;
}

const SYSTEM_DESTS = ['/', '/usr', '/etc', '/proc', '/dev', '/tmp', '/bin', '/sbin', '/lib', '/lib64', '/work'];

function checkRequest(req: SandboxRunRequest): void {
  for (const k of Object.keys(req.env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`not an environment variable name: ${JSON.stringify(k)}`);
  }
  for (const b of req.binds ?? []) {
    const dest = path.posix.normalize(b.dest);
    if (!path.posix.isAbsolute(b.dest) || dest !== b.dest || SYSTEM_DESTS.includes(dest) || dest.startsWith('/work/')) {
      throw new Error(
        `bind destination ${JSON.stringify(b.dest)}: must be a normalized absolute path outside the system and /work directories`,
      );
    }
    if (!path.isAbsolute(b.src) || !fs.existsSync(b.src))
      throw new Error(`bind source ${JSON.stringify(b.src)} does not exist`);
  }
}

// The step's first process joins its cgroup(s) before anything else runs, then execs the rest
// with an empty environment. "$@" is: the cgroup.procs files, `--`, the command.
const PRELUDE = 'for f; do shift; [ "$f" = -- ] && break; echo $$ > "$f" || exit 125; done; exec "$@"';

async function runSandboxed(p: SandboxReady, req: SandboxRunRequest): Promise<SandboxOutcome> {
  checkRequest(req);
  if (req.network && !p.network) {
    throw new Error(
      `step ${req.step} asks for network (sandbox.network), which this worker cannot give: needs root, slirp4netns, nsenter and ip`,
    );
  }
  const { limits } = req;
  const name = `${req.step}-${crypto.randomBytes(6).toString('hex')}`;
  const cg: StepCgroup | undefined = p.cgroups
    ? createStepCgroup(p.cgroups, name, { memoryBytes: limits.memoryMb * MB, pids: limits.pids })
    : undefined;
  const fdsToClose: number[] = [];
  let network: Promise<SandboxNetwork | undefined> | undefined;
  const stop = new AbortController();
  let setupError: Error | undefined;
  let diskFull = false;
  let cpuOver = false;
  let watcher: NodeJS.Timeout | undefined;
  try {
    const rlimits = ['--core=0', `--fsize=${limits.diskMb * MB}`];
    if (!cg?.enforces.pids) rlimits.push(`--nproc=${limits.pids}`);
    if (!cg?.enforces.memory) rlimits.push(`--as=${limits.memoryMb * MB}`);
    if (limits.cpuSeconds && !cg?.enforces.cpu) rlimits.push(`--cpu=${limits.cpuSeconds}`);

    const argsFile = path.join(req.scratch, `bwrap-args-${name}`);
    const withNet = req.network;
    let resolvFd: number | undefined;
    if (withNet) {
      // The host's resolver may be on its loopback, which the step cannot reach: slirp4netns's own.
      const resolv = path.join(req.scratch, `resolv-${name}.conf`);
      fs.writeFileSync(resolv, 'nameserver 10.0.2.3\n', { mode: 0o600 });
      resolvFd = fs.openSync(resolv, 'r');
      fdsToClose.push(resolvFd);
    }
    // Child fds: 3 args, 4 info (bwrap writes its PID 1), then with network 5 block (we release it
    // once the network is up), 6 resolv.conf.
    const bw = bwrapArgs(p, req, withNet ? { info: 4, block: 5, resolv: 6 } : { info: 4 });
    fs.writeFileSync(argsFile, bw.map((x) => `${x}\0`).join(''), { mode: 0o600 });
    const argsFd = fs.openSync(argsFile, 'r');
    fdsToClose.push(argsFd);
    const extraFds: (number | 'pipe')[] = withNet ? [argsFd, 'pipe', 'pipe', resolvFd as number] : [argsFd, 'pipe'];

    const argv = [
      '-c',
      PRELUDE,
      'sh',
      ...(cg?.procsFiles ?? []),
      '--',
      p.tools.env,
      '-i',
      p.tools.prlimit,
      ...rlimits,
      '--',
      ...(p.dropPrivileges
        ? [p.tools.setpriv as string, `--reuid=${p.uid}`, `--regid=${p.gid}`, '--clear-groups', '--no-new-privs', '--']
        : []),
      p.bwrap,
      '--args',
      '3',
      '--',
      '/bin/sh',
      '-c',
      req.command,
    ];

    watcher = setInterval(() => {
      const s = req.volume.sample();
      if (s.full) {
        diskFull = true;
        // A loop volume stops writes itself (ENOSPC); a watched directory needs the step stopped.
        if (req.volume.mechanism === 'watch') stop.abort();
      }
      const used = cg?.cpuSeconds();
      if (limits.cpuSeconds && used !== undefined && used > limits.cpuSeconds) {
        cpuOver = true;
        stop.abort();
      }
    }, WATCH_MS);

    // PID 1 of the sandbox: killed with bwrap's process group on cancellation, timeout or a limit
    // (namespace-init.ts), and where the network is attached.
    const namespaceInit = (child: ChildProcess) => {
      const init = readNamespaceInit((child.stdio as unknown as NodeJS.ReadableStream[])[4]);
      if (withNet) {
        network = connect(child, init, p.network as NetworkTools).catch((err: Error) => {
          setupError = err;
          stop.abort();
          return undefined;
        });
      }
      return init;
    };

    const outcome = await runProcess(p.tools.sh, argv, {
      ...req.run,
      // Not the worker's directory: nothing of the host should be any process's cwd in there.
      cwd: '/',
      env: {},
      extraFds,
      namespaceInit,
      stop: stop.signal,
    });
    clearInterval(watcher);
    watcher = undefined;
    if (req.volume.sample().full) diskFull = true;
    await network;
    if (setupError) throw new Error(`sandbox network for step ${req.step} failed: ${setupError.message}`);

    const hit: string[] = [];
    const ev = cg?.events();
    if (ev?.memoryOom) hit.push(`the memory limit of ${limits.memoryMb} MB (sandbox.limits.memoryMb)`);
    if (ev?.pidsMax) hit.push(`the process limit of ${limits.pids} processes (sandbox.limits.pids)`);
    if (diskFull) hit.push(`the disk limit of ${limits.diskMb} MB in its workspace (sandbox.limits.diskMb)`);
    if (cpuOver) hit.push(`the CPU time limit of ${limits.cpuSeconds} s (sandbox.limits.cpuSeconds)`);
    return { ...outcome, limitsHit: hit };
  } finally {
    if (watcher) clearInterval(watcher);
    (await network?.catch(() => undefined))?.stop();
    for (const fd of fdsToClose) fs.closeSync(fd);
    if (cg) {
      // The PID namespace is gone with bwrap; this catches anything that was never in it.
      await cg.killAll();
      cg.remove();
    }
  }
}

/** Starts the network in the sandbox's namespaces (its PID 1 from bwrap's --info-fd), then releases --block-fd. */
async function connect(
  child: ChildProcess,
  init: Promise<NamespaceInit | undefined>,
  tools: NetworkTools,
): Promise<SandboxNetwork> {
  const block = (child.stdio as unknown as NodeJS.WritableStream[])[5];
  if (!block) throw new Error('bwrap block pipe missing');
  const pid = (await init)?.pid;
  if (pid === undefined) throw new Error('the sandbox ended before its network was started');
  const net = await startNetwork(tools, pid);
  block.write('1');
  block.end();
  return net;
}
