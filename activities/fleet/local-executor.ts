// The `local` executor: a host is a Debian root on this machine (local-host.ts) and a script runs
// inside it through unshare + chroot, argv only, with its values in the environment. runProcess
// puts unshare in its own process group; on cancellation or timeout the group gets SIGTERM,
// unshare dies, and --kill-child takes the whole PID namespace (every process the script started)
// down with it.
//
// Only roots inside the configured hostsDir are accepted: a host's root comes from an EC2 tag,
// and without this a tag saying ConveyorHostRoot=/ would run apt-get on the worker itself.
import fs from 'node:fs';
import path from 'node:path';
import { runProcess } from '../exec/process';
import { TICK_MS, type ExecOutcome, type ExecRequest, type Executor } from './executor';
import { FleetFailure, fleetFailure } from './failures';
import { chrootArgv, chrootEnv, isHostRoot } from './local-host';
import { checkEnv } from './validate';
import type { Host } from './types';

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
      const outcome = await runProcess('unshare', chrootArgv(root, req.script), {
        env: chrootEnv(checkEnv(req.env)),
        logFile: req.logFile,
        signal: req.signal,
        heartbeatMs: TICK_MS,
        onTick: (ms) => req.onTick?.(ms),
        timeoutMs: req.timeoutMs,
      });
      return {
        exitCode: outcome.exitCode,
        signal: outcome.signal,
        tail: outcome.tail,
        durationMs: outcome.durationMs,
        cancelled: outcome.cancelled,
        timedOut: outcome.timedOut,
      };
    },
  };
}
