// Release stage (`…/release`, branch rules with `release: true`): tags `v<version>` at exactly the
// tested sha and cuts the next patch branch (activities/git/release.ts, pushed with the GitHub
// token, so on the orchestrator's queue: workflows/trusted-queue.ts), then records the stable
// release branch and the released version in the branch-state entity.
import { proxyActivities } from '@temporalio/workflow';
import type { OrchestratorActivities } from '../../activities';
import type { ReleaseResult } from '../../activities/git/release';
import { FailureType } from '../../common/failures';
import type { RepositorySpec } from '../../common/types';
import { trustedQueue } from '../trusted-queue';

export interface ReleaseStageInput {
  pipelineId: string;
  repository: RepositorySpec;
  branch: string;
  sha: string;
}

/** What the release did (activities/git/release.ts). */
export type ReleaseStageResult = ReleaseResult;

const control = proxyActivities<OrchestratorActivities>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 10 },
});

export async function releaseStage(input: ReleaseStageInput): Promise<ReleaseStageResult> {
  // The heartbeat timeout finds a worker that died mid-release in 30 s instead of 10 minutes
  // (the activity heartbeats; its options are not commands, so recorded runs replay unchanged).
  const { releaseCommit } = proxyActivities<OrchestratorActivities>({
    taskQueue: trustedQueue(input.repository.distros[0]),
    startToCloseTimeout: '10 minutes',
    heartbeatTimeout: '30 seconds',
    retry: { maximumAttempts: 5, nonRetryableErrorTypes: [FailureType.ReleaseConflict, FailureType.CommitNotFound] },
  });
  const r = await releaseCommit({ cloneUrl: input.repository.cloneUrl, sha: input.sha, branch: input.branch });
  await control.recordRelease({
    repository: input.repository.name,
    branch: input.branch,
    stableBranch: input.branch,
    version: r.version,
    at: new Date().toISOString(),
  });
  return r;
}
