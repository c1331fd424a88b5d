// runE2e: the repository's `e2e` step, run from a build worker against the staging hosts. The step
// gets CONVEYOR_HOSTS (host names) and CONVEYOR_HOST_EXEC, a small program written into the
// workspace: `$CONVEYOR_HOST_EXEC <host> <command…>` runs the command on that host (stdin passed
// through), so an e2e suite can run its examples and deployment scripts where the package is
// installed. Only local hosts can be reached this way for now; others make the step fail clearly.
import fs from 'node:fs';
import path from 'node:path';
import type { RunStepInput, StepResult } from '../../common/types';
import { stepResult, withStepWorkspace, type RunStepDeps } from '../exec/run-step';
import { FleetFailure, fleetFailure } from './failures';
import { localRoot } from './local-executor';
import { chrootArgv } from './local-host';
import type { Host } from './types';

const SAFE = /^[A-Za-z0-9._/-]+$/;
const HOST_EXEC_INSIDE = '/run/conveyor/host-exec';

export interface RunE2eInput extends RunStepInput {
  hosts: Host[];
}

/** The host-exec program: a case over host names, each line argv-only (names and roots checked). */
export function hostExecScript(hosts: Host[], hostsDir: string | undefined): string {
  const cases = hosts.map((h) => {
    if (!SAFE.test(h.name))
      throw fleetFailure(FleetFailure.BadInput, `host name ${JSON.stringify(h.name)} is not safe to name in a script`);
    if (h.executor !== 'local') {
      return `  ${h.name}) echo "conveyor-host-exec: ${h.name} uses the ${h.executor} executor, which e2e steps cannot reach yet" >&2; exit 2 ;;`;
    }
    const root = localRoot(h, hostsDir);
    if (!SAFE.test(root))
      throw fleetFailure(FleetFailure.BadInput, `host root ${JSON.stringify(root)} is not safe to name in a script`);
    // chrootArgv ends with `/bin/sh -c SCRIPT`; here the command comes from our own argv instead.
    const argv = chrootArgv(root, '').slice(0, -3);
    return `  ${h.name}) exec unshare ${argv.join(' ')} "$@" ;;`;
  });
  return [
    '#!/bin/sh',
    '# conveyor-host-exec HOST COMMAND...: runs COMMAND on a staging host of this run.',
    'set -eu',
    '[ $# -ge 2 ] || { echo "usage: conveyor-host-exec HOST COMMAND..." >&2; exit 2; }',
    'host=$1; shift',
    'case "$host" in',
    ...cases,
    '  *) echo "conveyor-host-exec: unknown host $host" >&2; exit 2 ;;',
    'esac',
    '',
  ].join('\n');
}

export function createRunE2e(deps: RunStepDeps & { hostsDir?: string }) {
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
        const exec = path.join(ws.dir, 'conveyor-host-exec');
        fs.writeFileSync(exec, hostExecScript(input.hosts, deps.hostsDir), { mode: 0o755 });
        ws.note(`hosts: ${input.hosts.map((h) => h.name).join(' ')}`);
        // In the sandbox the helper is mounted read-only at a fixed path. It still needs root on the
        // host (unshare + chroot) and therefore fails there: the e2e host channel served from
        // outside the sandbox replaces it (issue 11, §1).
        const inside = ws.sandbox === 'bwrap' ? HOST_EXEC_INSIDE : exec;
        const outcome = await ws.run(
          input.command,
          { ...input.env, CONVEYOR_HOSTS: input.hosts.map((h) => h.name).join(' '), CONVEYOR_HOST_EXEC: inside },
          input.timeoutSeconds,
          { binds: [{ src: exec, dest: HOST_EXEC_INSIDE, readOnly: true }] },
        );
        return stepResult(input.step, ws, outcome);
      },
    );
  };
}
