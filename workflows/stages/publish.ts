// Publish stage (`…/publish` for staging, the promote stage reuses it for production): adds the
// build's artifacts to the environment's signed apt/yum repositories and its docs site to the docs
// prefix. Publishes to one channel of one environment are serialised by the repository-lock
// entity (workflows/lock.ts); the lock is released even when this stage fails or is cancelled.
// The publisher is told which repository publishes and which package names it owns (computed here
// from the run's recorded spec, so reruns and promotions of runs recorded before `packages`
// existed get the default): it refuses names another repository owns in the channel and applies
// retention to this repository's packages only. Inputs only: the command sequence is unchanged.
// Repositories that share nothing (an APT suite, each distro's YUM repository) and the docs site are
// published side by side under the one lock (patch publish-repositories-side-by-side); distros that
// share a suite still publish one after the other. The lock is released only after every publish
// has ended, failed ones included.
import { patched, proxyActivities } from '@temporalio/workflow';
import type { OrchestratorActivities } from '../../activities';
import { FailureType } from '../../common/failures';
import { repositoryLockId } from '../../common/ids';
import { ownedPackages } from '../../common/package-names';
import type { ArtifactRef, DocsRef, RepositorySpec } from '../../common/types';
import { lockClient } from '../lock';

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
  repositories: {
    distro: string;
    path: string;
    suite?: string;
    changed: boolean;
    uploaded: number;
    removed: number;
    /** Artifacts retention dropped at once (older than the builds kept), with the reason. */
    dropped?: string[];
  }[];
  docs?: { site: string; index: string };
}

// The publish activities heartbeat every 5 s (activity-scope.ts ticker): 20 s without one means
// the worker died, and the next attempt resumes from the last one (the fault suite kills it
// between writes). Attempts back off to a minute apart over about ten minutes, so a storage
// outage of minutes delays a publish instead of failing it (the default backoff used five
// attempts up within 15 s).
const publisher = proxyActivities<OrchestratorActivities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '20 seconds',
  retry: {
    initialInterval: '2 seconds',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    maximumAttempts: 14,
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
  return publishUnderLock(input);
}

/** The publish itself, under the bucket and channel's lock; the promote stage uses it too. */
export async function publishUnderLock<R extends PublishStageResult = PublishStageResult>(
  input: PublishStageInput,
  /** Decided under the lock before anything is written: a result here ends the stage unpublished. */
  before?: () => Promise<R | undefined>,
): Promise<PublishStageResult | R> {
  const withLock = lockClient();
  const bucket = input.repository.buckets?.[input.environment] ?? input.environment;
  const lockId = repositoryLockId(bucket, input.channel);
  return withLock<PublishStageResult | R>(lockId, undefined, async (grant) => {
    const early = await before?.();
    if (early) return { result: early };
    const publishOne = async (p: PublishStageInput['packages'][number]) => {
      const r = await publisher.publishPackages.executeWithOptions(
        {
          summary: `publish ${p.artifacts.map((a) => `${a.name} ${a.version}`).join(', ')} to ${input.environment} ${input.channel} (${p.distro})`,
        },
        [
          {
            environment: input.environment,
            channel: input.channel,
            distro: p.distro,
            distroSpec: input.repository.distroSpecs[p.distro],
            artifacts: p.artifacts,
            keepBuilds: input.repository.keepBuilds,
            repository: input.repository.name,
            packages: ownedPackages(input.repository),
            // Fencing: the publisher checks this lease right before it switches the signed index.
            lease: { lockId, leaseId: grant.leaseId },
          },
        ],
      );
      return {
        distro: p.distro,
        path: r.repoUrlPath,
        suite: r.suite,
        changed: r.changed,
        uploaded: r.uploaded.length,
        removed: r.removed.length,
        ...(r.dropped?.length
          ? { dropped: r.dropped.map((d) => `${d.name} ${d.version} ${d.arch}: ${d.reason}`) }
          : {}),
      };
    };
    const publishDocs = async (docsRef: DocsRef): Promise<PublishStageResult['docs']> => {
      const d = await publisher.publishDocs({
        environment: input.environment,
        repository: input.repository.name,
        channel: input.channel,
        docs: docsRef,
      });
      return { site: d.sitePath, index: d.indexPath };
    };
    const groups = repositoryGroups(input);
    // Only a stage with two things to publish side by side asks: the others' histories are as before.
    if (groups.length + (input.docs ? 1 : 0) > 1 && patched(PUBLISH_SIDE_BY_SIDE_PATCH)) {
      const done = new Map<string, PublishStageResult['repositories'][number]>();
      let docs: PublishStageResult['docs'];
      const settled = await Promise.allSettled([
        ...groups.map(async (group) => {
          for (const p of group) done.set(p.distro, await publishOne(p));
        }),
        ...(input.docs ? [publishDocs(input.docs).then((d) => void (docs = d))] : []),
      ]);
      // Every publish has ended before the lock goes: the first failure (input order) is the stage's.
      const failed = settled.find((x): x is PromiseRejectedResult => x.status === 'rejected');
      if (failed) throw failed.reason;
      const repositories = input.packages.map((p) => done.get(p.distro)!);
      return { result: { environment: input.environment, channel: input.channel, repositories, docs } };
    }
    const repositories: PublishStageResult['repositories'] = [];
    for (const p of input.packages) repositories.push(await publishOne(p));
    const docs = input.docs ? await publishDocs(input.docs) : undefined;
    return { result: { environment: input.environment, channel: input.channel, repositories, docs } };
  });
}

export const PUBLISH_SIDE_BY_SIDE_PATCH = 'publish-repositories-side-by-side';

/** The packages by the repository they go to, in input order: an APT suite (its codename, which
 * two distros may share: their publishes stay one after the other) or a distro's YUM repository. */
function repositoryGroups(input: PublishStageInput): PublishStageInput['packages'][] {
  const groups = new Map<string, PublishStageInput['packages']>();
  for (const p of input.packages) {
    const spec = input.repository.distroSpecs[p.distro];
    const key = spec?.format === 'rpm' ? `yum ${p.distro}` : `apt ${spec?.codename ?? p.distro}`;
    groups.set(key, [...(groups.get(key) ?? []), p]);
  }
  return [...groups.values()];
}
