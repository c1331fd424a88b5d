// Package stage: one child per distro (`…/package/<distro>`), its activity on `build-<distro>`:
// build the .deb/.rpm at the exact sha, validate them (a name outside the repository's `packages`
// fails the stage), store them in the artifacts bucket under the build's identity (repository,
// branch, build, commit) and distro. Re-running it for the same build and commit returns the stored
// artifacts. The docs site is built once per build by its own child (`…/package/docs`).
import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { BuildActivities } from '../../activities';
import { FailureType } from '../../common/failures';
import { buildQueue } from '../../common/queues';
import { workerWaitNotice } from '../worker-wait';
import type { ArtifactRef, DistroSpec, DocsRef, RepositorySpec } from '../../common/types';

export interface PackageStageInput {
  pipelineId: string;
  repository: RepositorySpec;
  branch: string;
  sha: string;
  distro: string;
  distroSpec: DistroSpec;
  build: number;
}

export interface PackageStageResult {
  version: string;
  build: number;
  artifacts: ArtifactRef[];
  logKey: string;
}

function buildActivities(distro: string, stepTimeoutSeconds: number) {
  return proxyActivities<BuildActivities>({
    taskQueue: buildQueue(distro),
    startToCloseTimeout: `${stepTimeoutSeconds + 600} seconds`,
    heartbeatTimeout: '30 seconds',
    retry: {
      maximumAttempts: 3,
      nonRetryableErrorTypes: [FailureType.CommandFailed, FailureType.CommitNotFound, FailureType.BadPackage],
    },
  });
}

export async function packageStage(input: PackageStageInput): Promise<PackageStageResult> {
  const { buildPackages } = buildActivities(input.distro, input.repository.stepTimeoutSeconds);
  const watched = workerWaitNotice(buildQueue(input.distro), input.repository.workerWaitNoticeSeconds);
  const r = await watched(
    buildPackages.executeWithOptions(
      {
        summary: `build ${input.distroSpec.format} packages of ${input.repository.name} build ${input.build} for ${input.distro}`,
      },
      [
        {
          pipelineId: input.pipelineId,
          stageWorkflowId: workflowInfo().workflowId,
          repository: input.repository,
          branch: input.branch,
          sha: input.sha,
          distro: input.distro,
          distroSpec: input.distroSpec,
          build: input.build,
        },
      ],
    ),
  );
  return { version: r.version, build: r.build, artifacts: r.artifacts, logKey: r.logKey };
}

export interface DocsStageInput {
  pipelineId: string;
  repository: RepositorySpec;
  branch: string;
  sha: string;
  build: number;
  /** The build queue that runs the docs step. */
  distro: string;
}

export interface DocsStageResult {
  docs: DocsRef | null;
  logKey?: string;
}

export async function docsStage(input: DocsStageInput): Promise<DocsStageResult> {
  const { buildDocs } = buildActivities(input.distro, input.repository.stepTimeoutSeconds);
  const watched = workerWaitNotice(buildQueue(input.distro), input.repository.workerWaitNoticeSeconds);
  return watched(
    buildDocs({
      pipelineId: input.pipelineId,
      stageWorkflowId: workflowInfo().workflowId,
      repository: input.repository,
      branch: input.branch,
      sha: input.sha,
      build: input.build,
    }),
  );
}
