// Verify stage (`…/verify`): the repository's `smoke` step on every upgraded staging host through
// its executor (CONVEYOR_HOST set), then, when all pass, its `e2e` step from a build worker against
// the hosts (CONVEYOR_HOSTS lists them; CONVEYOR_HOST_EXEC runs a command on one). Logs go to the
// artifacts bucket; the stage returns keys and tails, and a failure names host, exit code and tail.
import { ApplicationFailure, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { BuildActivities } from '../../activities';
import type { Host } from '../../activities/fleet';
import { FailureType } from '../../common/failures';
import { buildQueue } from '../../common/queues';
import type { RepositorySpec } from '../../common/types';
import { stepEnvFor } from '../support';

export interface VerifyStageInput {
  pipelineId: string;
  repository: RepositorySpec;
  branch: string;
  sha: string;
  /** The project's version (CONVEYOR_VERSION) and the build number (CONVEYOR_BUILD); the packages
   * are versioned `<version>-<build>` (CONVEYOR_PACKAGE_VERSION). */
  version: string;
  build: number;
  hosts: { distro: string; hosts: Host[] }[];
}

export interface HostCheck {
  host: string;
  distro: string;
  exitCode: number;
  logKey: string;
  tail: string;
}

export interface VerifyStageResult {
  smoke: HostCheck[];
  e2e?: { logKey: string; tail: string };
}

function versionEnv(input: VerifyStageInput): Record<string, string> {
  return {
    CONVEYOR_VERSION: input.version,
    CONVEYOR_BUILD: String(input.build),
    CONVEYOR_PACKAGE_VERSION: `${input.version}-${input.build}`,
  };
}

export async function verifyStage(input: VerifyStageInput): Promise<VerifyStageResult> {
  const me = workflowInfo().workflowId;
  const { smoke, e2e } = input.repository.steps;
  const on = (distro: string) =>
    proxyActivities<BuildActivities>({
      taskQueue: buildQueue(distro),
      startToCloseTimeout: `${input.repository.stepTimeoutSeconds + 300} seconds`,
      heartbeatTimeout: '1 minute',
      retry: { maximumAttempts: 3, nonRetryableErrorTypes: [FailureType.CommandFailed, FailureType.BadConfig] },
    });
  const checks: HostCheck[] = [];
  if (smoke) {
    const all = input.hosts.flatMap((g) => g.hosts.map((host) => ({ distro: g.distro, host })));
    const results = await Promise.all(
      all.map(async ({ distro, host }) => {
        const r = await on(distro).runOnHost({
          host,
          command: smoke,
          env: { ...stepEnvFor(input, distro), ...versionEnv(input), CONVEYOR_HOST: host.name },
          logKey: `logs/${me}/smoke-${host.name}.log`,
          timeoutSeconds: input.repository.stepTimeoutSeconds,
        });
        return { host: host.name, distro, exitCode: r.exitCode, logKey: r.logKey, tail: r.tail };
      }),
    );
    checks.push(...results);
    const failed = results.filter((r) => r.exitCode !== 0);
    if (failed.length > 0) {
      throw ApplicationFailure.create({
        type: FailureType.VerifyFailed,
        message: `smoke failed on ${failed.map((f) => `${f.host} (exit ${f.exitCode})`).join(', ')}`,
        nonRetryable: true,
        details: [
          {
            step: 'smoke',
            exitCode: failed[0].exitCode,
            signal: null,
            logKey: failed[0].logKey,
            tail: failed.map((f) => `--- ${f.host}\n${f.tail}`).join('\n'),
          },
        ],
      });
    }
  }
  let e2eResult: VerifyStageResult['e2e'];
  if (e2e) {
    const distro = input.hosts[0]?.distro ?? input.repository.distros[0];
    const r = await on(distro).runE2e({
      pipelineId: input.pipelineId,
      stageWorkflowId: me,
      stage: 'verify',
      step: 'e2e',
      command: e2e,
      cloneUrl: input.repository.cloneUrl,
      sha: input.sha,
      env: { ...stepEnvFor(input, distro), ...versionEnv(input) },
      timeoutSeconds: input.repository.stepTimeoutSeconds,
      sandbox: input.repository.sandbox,
      hosts: input.hosts.flatMap((g) => g.hosts),
    });
    e2eResult = { logKey: r.logKey, tail: r.tail };
  }
  return { smoke: checks, e2e: e2eResult };
}
