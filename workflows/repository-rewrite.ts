// `conveyor repo rollback|remove`: one new generation of one channel's repository for one distro,
// made from an earlier generation's snapshot (rollback) or from the live one without a version
// (remove). It takes the same lock as a publish to that bucket and channel (repo-lock entity,
// lock.ts), so it never interleaves with a publish or the scheduled re-sign, and the activity is
// fenced by the lease like a publish: a rewrite whose lease passed never switches the index.
import { proxyActivities } from '@temporalio/workflow';
import type { OrchestratorActivities } from '../activities';
import type { RewriteRepositoryInput, RewriteRepositoryResult } from '../activities/repository';
import { FailureType } from '../common/failures';
import { repositoryLockId } from '../common/ids';
import { lockClient } from './lock';

export interface RepositoryRewriteInput extends Omit<RewriteRepositoryInput, 'lease'> {
  /** The environment's bucket: the publish lock is per bucket and channel. */
  bucket: string;
}

export type RepositoryRewriteResult = RewriteRepositoryResult;

const rewriter = proxyActivities<OrchestratorActivities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '1 minute',
  retry: {
    maximumAttempts: 5,
    nonRetryableErrorTypes: [
      FailureType.BadConfig,
      FailureType.BadPackage,
      FailureType.ArtifactMismatch,
      FailureType.RepositoryStateMissing,
    ],
  },
});

export async function repositoryRewrite(input: RepositoryRewriteInput): Promise<RepositoryRewriteResult> {
  const withLock = lockClient();
  const lockId = repositoryLockId(input.bucket, input.channel);
  return withLock<RepositoryRewriteResult>(lockId, undefined, async (grant) => ({
    result: await rewriter.rewriteRepository({
      environment: input.environment,
      channel: input.channel,
      distro: input.distro,
      distroSpec: input.distroSpec,
      action: input.action,
      ...(input.by !== undefined ? { by: input.by } : {}),
      lease: { lockId, leaseId: grant.leaseId },
    }),
  }));
}
