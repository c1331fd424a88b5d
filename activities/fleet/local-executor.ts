// The `local` executor: a host is a Debian root on this machine (local-host.ts) and a script runs
// inside it through bubblewrap (hostCommand: the root is the root of its own mount namespace,
// argv only, values as --setenv). runProcess puts bwrap in its own process group; on cancellation
// or timeout the group gets SIGTERM, and PID 1 of the host's PID namespace (reported by bwrap on
// fd 3, --info-fd) gets SIGKILL, which takes every process the script started down: bwrap's
// --die-with-parent alone misses a cancellation that comes right after the start
// (activities/exec/namespace-init.ts).
//
// Only roots inside the configured hostsDir are accepted: a host's root comes from an EC2 tag,
// and without this a tag saying ConveyorHostRoot=/ would run apt-get on the worker itself.
import fs from 'node:fs';
import path from 'node:path';
import { readNamespaceInit } from '../exec/namespace-init';
import { runProcess } from '../exec/process';
import { Capture, TICK_MS, type ExecOutcome, type ExecRequest, type Executor } from './executor';
import { FleetFailure, fleetFailure } from './failures';
import { hostCommand, isHostRoot } from './local-host';
import { checkEnv } from './validate';
import type { Host } from './types';

const HOSTNAME = /^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/;

/** The host's root, checked to be a local host inside hostsDir. */
export function localRoot(host: Host, hostsDir: string | undefined): string {
  if (!hostsDir) {
    throw fleetFailure(
      FleetFailure.BadConfig,
      `host ${host.name} (${host.instanceId}) uses the local executor, but this worker has no hostsDir: ` +
        'local hosts exist only on the local stack',
    );
  }
  if (!host.root) {
    throw fleetFailure(FleetFailure.BadConfig, `host ${host.name} (${host.instanceId}) has no ConveyorHostRoot tag`);
  }
  const dir = path.resolve(hostsDir);
  const root = path.resolve(host.root);
  if (!root.startsWith(`${dir}${path.sep}`)) {
    throw fleetFailure(
      FleetFailure.BadConfig,
      `host ${host.name}: root ${root} is outside the local hosts directory ${dir}`,
    );
  }
  return root;
}

export function localExecutor(hostsDir: string | undefined): Executor {
  return {
    async run(req: ExecRequest): Promise<ExecOutcome> {
      const root = localRoot(req.host, hostsDir);
      if (!isHostRoot(root)) {
        throw fleetFailure(
          FleetFailure.HostUnreachable,
          `local host ${req.host.name}: ${root} is not a host root (made by ensureLocalHost on deploy or by conveyor dev)`,
        );
      }
      fs.mkdirSync(path.dirname(req.logFile), { recursive: true });
      const cmd = hostCommand(root, req.script, checkEnv(req.env), {
        hostname: HOSTNAME.test(req.host.name) ? req.host.name : undefined,
        infoFd: 3,
      });
      const capture = req.captureBytes ? new Capture(req.captureBytes) : undefined;
      const outcome = await runProcess(cmd.file, cmd.args, {
        env: cmd.env,
        stdin: req.stdin,
        onOutput: capture?.push,
        logFile: req.logFile,
        signal: req.signal,
        heartbeatMs: TICK_MS,
        onTick: (ms) => req.onTick?.(ms),
        timeoutMs: req.timeoutMs,
        extraFds: ['pipe'],
        namespaceInit: (child) => readNamespaceInit(child.stdio[3] as NodeJS.ReadableStream),
      });
      return {
        exitCode: outcome.exitCode,
        signal: outcome.signal,
        tail: outcome.tail,
        durationMs: outcome.durationMs,
        cancelled: outcome.cancelled,
        timedOut: outcome.timedOut,
        captured: capture?.result(),
      };
    },
  };
}
