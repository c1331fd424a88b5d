// Network for a sandboxed step that asked for it (conveyor.yml `sandbox.network`): slirp4netns
// gives the step's own network namespace a user-mode TCP/IP stack (tap0, 10.0.2.100/24, gateway
// 10.0.2.2, DNS 10.0.2.3) whose connections leave through ordinary sockets of the host. Why
// slirp4netns and not pasta: see sandbox.ts.
//
// What the step must not reach is the builder itself:
// - its loopback (Temporal, the S3 endpoint, the API): `--disable-host-loopback` makes slirp4netns
//   refuse 10.0.2.2 → 127.0.0.1 and any 127.0.0.0/8 destination;
// - its other addresses (eth0's, a docker bridge's), where a service bound to 0.0.0.0 listens too:
//   an `unreachable` route per address is added inside the step's namespace before it starts. The
//   step cannot remove them: it holds no capability over its network namespace (bwrap drops them,
//   and the namespace belongs to the user namespace bwrap made, not the nested one the step runs in).
// Other machines of the builder's network stay reachable, as from any CI runner with network: keep
// the orchestrator's services off networks the build hosts are on, or firewall the sandbox uid.
import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { runChecked } from './process';

export interface NetworkTools {
  slirp4netns: string;
  nsenter: string;
  ip: string;
}

export interface SandboxNetwork {
  /** The host addresses made unreachable inside the namespace. */
  blocked: string[];
  stop(): void;
}

const READY_TIMEOUT_MS = 15_000;

/** The builder's own IPv4 addresses other than loopback (slirp4netns guards that one). */
export function hostAddresses(): string[] {
  const out = new Set<string>();
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.family === 'IPv4' && !a.address.startsWith('127.')) out.add(a.address);
    }
  }
  return [...out].sort();
}

/**
 * Connects the network namespace of `pid` (the sandbox's PID 1, from bwrap's --info-fd) and blocks
 * the host's addresses in it. Resolves once the step may start; throws (with slirp4netns stopped)
 * when any part fails, so a step never runs with a half-made network.
 */
export async function startNetwork(tools: NetworkTools, pid: number): Promise<SandboxNetwork> {
  const child = spawn(
    tools.slirp4netns,
    [
      '--configure',
      '--mtu=65520',
      '--disable-host-loopback',
      // Its own mount namespace without the host's files, capabilities dropped, a syscall filter.
      '--enable-sandbox',
      '--enable-seccomp',
      // As root it must not join the step's (nested) user namespace: from there it could not enter
      // the network namespace, which belongs to the parent one. Naming its own user namespace makes
      // that setns a no-op.
      '--userns-path=/proc/self/ns/user',
      '--ready-fd=3',
      '--exit-fd=4',
      String(pid),
      'tap0',
    ],
    { env: {}, stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'], detached: true },
  );
  const stop = () => stopChild(child);
  try {
    await waitReady(child);
    const blocked = hostAddresses();
    const netns = `--net=/proc/${pid}/ns/net`;
    for (const addr of blocked) {
      await runChecked(tools.nsenter, [netns, '--', tools.ip, 'route', 'add', 'unreachable', `${addr}/32`], {
        env: {},
      });
    }
    return { blocked, stop };
  } catch (err) {
    stop();
    throw err;
  }
}

function waitReady(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let stderr = '';
    child.stderr?.on('data', (b: Buffer) => {
      stderr = (stderr + b.toString('utf8')).slice(-2000);
    });
    const timer = setTimeout(
      () => done(new Error(`slirp4netns not ready after ${READY_TIMEOUT_MS / 1000} s: ${stderr.trim()}`)),
      READY_TIMEOUT_MS,
    );
    const ready = child.stdio[3] as NodeJS.ReadableStream | null;
    const onData = () => done();
    const onExit = (code: number | null, sig: string | null) =>
      done(new Error(`slirp4netns exited (${code ?? sig}) before the network was up: ${stderr.trim()}`));
    const onError = (err: Error) => done(new Error(`slirp4netns: ${err.message}`));
    ready?.on('data', onData);
    child.once('exit', onExit);
    child.once('error', onError);
    function done(err?: Error) {
      clearTimeout(timer);
      ready?.removeListener('data', onData);
      child.removeListener('exit', onExit);
      child.removeListener('error', onError);
      if (err) reject(err);
      else resolve();
    }
  });
}

function stopChild(child: ChildProcess): void {
  (child.stdio[4] as NodeJS.WritableStream | null)?.end();
  if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}
