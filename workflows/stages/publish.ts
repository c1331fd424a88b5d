// Publish stage (`…/publish` for staging, the promote stage reuses it for production): adds the
// build's artifacts to the environment's signed apt/yum repositories and its docs site to the docs
// prefix. Publishes to one channel of one environment are serialised by the repository-lock
// entity; the lock is released even when this stage fails or is cancelled.
import {
  CancellationScope,
  condition,
  getExternalWorkflowHandle,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { OrchestratorActivities } from '../../activities';
import { FailureType } from '../../common/failures';
import { repositoryLockId } from '../../common/ids';
import type { ArtifactRef, DocsRef, RepositorySpec } from '../../common/types';
import { lockGrantedSignal, releaseLockSignal } from '../messages';

export type Environment = 'staging' | 'production';

export interface PublishStageInput {
  pipelineId: string;
  repository: RepositorySpec;
  environment: Environment;
  channel: string;
  packages: { distro: string; artifacts: ArtifactRef[] }[];
  docs: DocsRef | null;
}

export interface PublishStageResult {
  environment: Environment;
  channel: string;
  repositories: { distro: string; path: string; changed: boolean; uploaded: number; removed: number }[];
  docs?: { site: string; index: string };
}

/** A publish normally takes seconds; a holder silent for this long is presumed gone. */
const LOCK_LEASE_SECONDS = 1800;

const control = proxyActivities<OrchestratorActivities>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 10 },
});

const publisher = proxyActivities<OrchestratorActivities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '1 minute',
  retry: {
    maximumAttempts: 5,
    nonRetryableErrorTypes: [
      FailureType.ArtifactMismatch,
      FailureType.ArtifactConflict,
      FailureType.BadPackage,
      FailureType.BadDocs,
      FailureType.BadConfig,
    ],
  },
});

export async function publishStage(input: PublishStageInput): Promise<PublishStageResult> {
  const me = workflowInfo().workflowId;
  const lockId = repositoryLockId(input.environment, input.channel);
  let leaseId: string | undefined;
  setHandler(lockGrantedSignal, (g) => {
    if (g.lockId === lockId) leaseId = g.leaseId;
  });
  await control.requestLock({ lockId, requester: me, leaseSeconds: LOCK_LEASE_SECONDS });
  await condition(() => leaseId !== undefined);
  try {
    const repositories: PublishStageResult['repositories'] = [];
    for (const p of input.packages) {
      const r = await publisher.publishPackages({
        environment: input.environment,
        channel: input.channel,
        distro: p.distro,
        distroSpec: input.repository.distroSpecs[p.distro],
        artifacts: p.artifacts,
        keepBuilds: input.repository.keepBuilds,
      });
      repositories.push({
        distro: p.distro,
        path: r.repoUrlPath,
        changed: r.changed,
        uploaded: r.uploaded.length,
        removed: r.removed.length,
      });
    }
    let docs: PublishStageResult['docs'];
    if (input.docs) {
      const d = await publisher.publishDocs({
        environment: input.environment,
        repository: input.repository.name,
        channel: input.channel,
        docs: input.docs,
      });
      docs = { site: d.sitePath, index: d.indexPath };
    }
    return { environment: input.environment, channel: input.channel, repositories, docs };
  } finally {
    const lease = leaseId as string;
    // Released even when the publish failed or this stage is being cancelled.
    await CancellationScope.nonCancellable(() =>
      getExternalWorkflowHandle(lockId).signal(releaseLockSignal, { requester: me, leaseId: lease }),
    );
  }
}
