// Package stage: one child per distro (`…/package/<distro>`), its activity on `build-<distro>`:
// build the .deb/.rpm at the exact sha, validate them (a name outside the repository's `packages`
// fails the stage), store them in the artifacts bucket under the build's identity (repository,
// branch, build, commit) and distro. Re-running it for the same build and commit returns the stored
// artifacts. The docs site is built once per build by its own child (`…/package/docs`).
// rpms are then signed once, on the orchestrator's queue (builders hold no signing key), and the
// signed files become the artifacts: every publish, staging and production, uploads those bytes.
// Runs recorded before that (no marker `sign-at-package`) keep their unsigned artifacts, which the
// publisher signs at each publish.
import { patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { BuildActivities, OrchestratorActivities } from '../../activities';
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

export const SIGN_AT_PACKAGE_PATCH = 'sign-at-package';

// The workflow's own queue (the orchestrator's): the signing key is there and only there. The
// rpms are small and signing takes seconds; a dead worker shows within the heartbeat timeout.
const trusted = proxyActivities<OrchestratorActivities>({
  startToCloseTimeout: '20 minutes',
  heartbeatTimeout: '30 seconds',
  retry: {
    maximumAttempts: 5,
    nonRetryableErrorTypes: [FailureType.ArtifactMismatch, FailureType.BadPackage, FailureType.BadConfig],
  },
});

export async function packageStage(input: PackageStageInput): Promise<PackageStageResult> {
  const built = await builtPackages(input);
  // Only rpm stages ask: a deb stage's history is the same before and after the patch.
  if (input.distroSpec.format === 'rpm' && patched(SIGN_AT_PACKAGE_PATCH)) return signedPackages(input, built);
  return built;
}

/** The build worker's packages, stored unsigned. */
export async function builtPackages(input: PackageStageInput): Promise<PackageStageResult> {
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

/** The same result with every rpm replaced by its file signed once, on the orchestrator. */
export async function signedPackages(input: PackageStageInput, built: PackageStageResult): Promise<PackageStageResult> {
  const { artifacts } = await trusted.signPackages.executeWithOptions(
    { summary: `sign the rpms of ${input.repository.name} build ${input.build} for ${input.distro}` },
    [
      {
        repository: input.repository,
        branch: input.branch,
        sha: input.sha,
        build: input.build,
        distro: input.distro,
        artifacts: built.artifacts,
      },
    ],
  );
  return { ...built, artifacts };
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
