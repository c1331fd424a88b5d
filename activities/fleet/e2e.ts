// runE2e: the repository's `e2e` step, run on a build worker (it is repository code) against the
// staging hosts of its run. The step gets CONVEYOR_HOSTS (host names) and CONVEYOR_HOST_EXEC:
// `$CONVEYOR_HOST_EXEC [-n] <host> <command…>` runs the command on that host, stdin passed
// (capped), and prints its stdout and stderr and exits with its code.
//
// The step holds no way to reach a host: no root, no hosts directory, no SSH key, no SSM
// credentials. CONVEYOR_HOST_EXEC is a small client (host-exec-client.js) that talks to a unix
// socket beside it; this activity serves that socket (host-exec-relay.ts) while the step runs and
// forwards each request as the `hostExec` Update to the verify stage workflow that runs this e2e
// (input.stageWorkflowId). The workflow accepts only its own run's hosts and runs the command with
// the fleet executor on the orchestrator's queue, so every host command is in the run's history.
//
// Client and socket live in one directory, which a step sandbox binds at HOST_EXEC_MOUNT; the
// client finds the socket beside itself, so the same files work at either path.
import fs from 'node:fs';
import path from 'node:path';
import type { HostExecRequest, HostExecResult } from '../../common/host-exec';
import type { RunStepInput, StepResult } from '../../common/types';
import { stepResult, withStepWorkspace, type RunStepDeps, type StepRunOptions } from '../exec/run-step';
import { startHostExecRelay } from './host-exec-relay';
import type { Host } from './types';

export interface RunE2eInput extends RunStepInput {
  hosts: Host[];
}

/** Where a step sandbox shows the host-exec directory. */
export const HOST_EXEC_MOUNT = '/run/conveyor';

/** The client program, copied next to the socket for each step. */
export const HOST_EXEC_CLIENT = path.join(__dirname, 'host-exec-client.js');

export interface RunE2eDeps extends RunStepDeps {
  /** Sends one request to the verify stage workflow `stageWorkflowId` (its hostExec Update). */
  forwardHostExec: (stageWorkflowId: string, req: HostExecRequest) => Promise<HostExecResult>;
  /** The node binary that runs the client; default this process's. */
  nodePath?: string;
}

export interface HostExecFiles {
  /** The directory on this machine: client, its wrapper and the socket. */
  dir: string;
  socket: string;
  /** What the step is told, as paths it can see. */
  env: Record<string, string>;
  binds: NonNullable<StepRunOptions['binds']>;
}

/**
 * Writes the client into `dir` and says how the step reaches it. `sandboxed`: the step sees `dir`
 * at HOST_EXEC_MOUNT, read-only (a unix socket can be connected to on a read-only mount), and a
 * node binary outside /usr is bound over the placeholder `node` in it (copied there instead when
 * the sandbox uid could not reach it); otherwise (`sandbox: none`) nothing is bound and the step
 * sees this machine's paths.
 */
export function writeHostExecFiles(dir: string, nodePath: string, sandboxed: boolean): HostExecFiles {
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  fs.chmodSync(dir, 0o755);
  fs.copyFileSync(HOST_EXEC_CLIENT, path.join(dir, 'host-exec.js'));
  fs.chmodSync(path.join(dir, 'host-exec.js'), 0o644);
  const view = sandboxed ? HOST_EXEC_MOUNT : dir;
  const binds: HostExecFiles['binds'] = sandboxed ? [{ src: dir, dest: HOST_EXEC_MOUNT, readOnly: true }] : [];
  let node = nodePath;
  if (sandboxed && !nodePath.startsWith('/usr/')) {
    node = `${HOST_EXEC_MOUNT}/node`;
    if (othersCanRun(nodePath)) {
      fs.writeFileSync(path.join(dir, 'node'), '', { mode: 0o755 });
      binds.push({ src: nodePath, dest: node, readOnly: true });
    } else {
      // A Node the sandbox uid cannot reach (a per-user install such as ~/.cache/… or ~/.nvm/…
      // under a 0700 home): bwrap resolves bind sources as that uid and would refuse it. A copy
      // beside the client is readable through the directory's own bind.
      fs.copyFileSync(nodePath, path.join(dir, 'node'));
      fs.chmodSync(path.join(dir, 'node'), 0o755);
    }
  }
  fs.writeFileSync(
    path.join(dir, 'host-exec'),
    [
      '#!/bin/sh',
      '# conveyor-host-exec [-n] HOST COMMAND...: runs COMMAND on a staging host of this run (see host-exec.js).',
      `exec '${node.replace(/'/g, `'\\''`)}' "\${0%/*}/host-exec.js" "$@"`,
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  const socket = path.join(dir, 'host-exec.sock');
  return {
    dir,
    socket,
    env: { CONVEYOR_HOST_EXEC: `${view}/host-exec`, CONVEYOR_HOST_EXEC_SOCKET: `${view}/host-exec.sock` },
    binds,
  };
}

/** Whether any user may run `file`: every directory above it searchable by others, the file
 * readable and executable by them (what an unprivileged sandbox uid needs to bind and exec it). */
export function othersCanRun(file: string): boolean {
  try {
    const real = fs.realpathSync(file);
    if ((fs.statSync(real).mode & 0o005) !== 0o005) return false;
    for (let dir = path.dirname(real); ; dir = path.dirname(dir)) {
      if ((fs.statSync(dir).mode & 0o001) === 0) return false;
      if (dir === path.dirname(dir)) return true;
    }
  } catch {
    return false;
  }
}

export function createRunE2e(deps: RunE2eDeps) {
  return async function runE2e(input: RunE2eInput): Promise<StepResult> {
    return withStepWorkspace(
      deps,
      {
        stageWorkflowId: input.stageWorkflowId,
        step: input.step,
        cloneUrl: input.cloneUrl,
        sha: input.sha,
        repository: input.env.CONVEYOR_REPOSITORY,
        sandbox: input.sandbox,
      },
      async (ws) => {
        // In the sandbox the step sees the directory at HOST_EXEC_MOUNT (the binds); with
        // `sandbox: none` nothing is mounted and it is told this machine's paths.
        const files = writeHostExecFiles(
          path.join(ws.dir, 'host-exec'),
          deps.nodePath ?? process.execPath,
          ws.sandbox === 'bwrap',
        );
        const relay = await startHostExecRelay({
          socketPath: files.socket,
          forward: (req) => deps.forwardHostExec(input.stageWorkflowId, req),
          log: (m, meta) => ws.hooks.log.info(m, meta),
        });
        try {
          ws.note(`hosts: ${input.hosts.map((h) => h.name).join(' ')}`);
          const outcome = await ws.run(
            input.command,
            { ...input.env, CONVEYOR_HOSTS: input.hosts.map((h) => h.name).join(' '), ...files.env },
            input.timeoutSeconds,
            files.binds.length > 0 ? { binds: files.binds } : undefined,
          );
          return stepResult(input.step, ws, outcome);
        } finally {
          await relay.close();
          ws.note(`host-exec: ${relay.forwarded()} request(s) relayed to ${input.stageWorkflowId}`);
        }
      },
    );
  };
}
