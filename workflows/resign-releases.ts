// The scheduled re-sign (Temporal Schedule `conveyor-resign-releases`, workers/resign-schedule.ts):
// APT Releases carry `Valid-Until` (signing.validDays, default 7), after which apt refuses them,
// so a channel nobody publishes to must be signed again before then. For every APT suite of the
// config, under the same lock as a publish to that bucket and channel (a re-sign racing a publish
// could put an older Release back), the live Release is signed again with a new Date and
// Valid-Until (activities/repository/resign-release.ts). A suite that has never been published
// is skipped by the activity. `conveyor keys rotate` starts it too, with every yum repository as
// well and `keys` set (README "Rotating the signing key").
import { proxyActivities } from '@temporalio/workflow';
import type { OrchestratorActivities } from '../activities';
import { FailureType } from '../common/failures';
import { repositoryLockId } from '../common/ids';
import type { DistroSpec } from '../common/types';
import { lockClient } from './lock';

export interface ResignTarget {
  environment: 'staging' | 'production';
  /** The environment's bucket: the publish lock is per bucket and channel. */
  bucket: string;
  channel: string;
  distro: string;
  distroSpec: DistroSpec;
}

export interface ResignReleasesInput {
  targets: ResignTarget[];
  /** A key rotation (`conveyor keys rotate`): yum repositories are re-signed too. */
  keys?: boolean;
}

export interface ResignReleasesResult {
  resigned: { environment: string; channel: string; distro: string; validUntil?: string }[];
  skipped: { environment: string; channel: string; distro: string }[];
}

const signer = proxyActivities<OrchestratorActivities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '1 minute',
  retry: {
    maximumAttempts: 5,
    nonRetryableErrorTypes: [FailureType.BadConfig, FailureType.RepositoryStateMissing],
  },
});

export async function resignReleases(input: ResignReleasesInput): Promise<ResignReleasesResult> {
  const withLock = lockClient();
  const result: ResignReleasesResult = { resigned: [], skipped: [] };
  const byLock = new Map<string, ResignTarget[]>();
  for (const t of input.targets) {
    const id = repositoryLockId(t.bucket, t.channel);
    byLock.set(id, [...(byLock.get(id) ?? []), t]);
  }
  for (const [lockId, targets] of byLock) {
    await withLock(lockId, undefined, async (grant) => {
      for (const t of targets) {
        const r = await signer.resignRepository({
          environment: t.environment,
          channel: t.channel,
          distro: t.distro,
          distroSpec: t.distroSpec,
          lease: { lockId, leaseId: grant.leaseId },
          // Only when set: the same activity, so recorded histories replay unchanged.
          ...(input.keys ? { keys: true } : {}),
        });
        const what = { environment: t.environment, channel: t.channel, distro: t.distro };
        if (r.resigned) result.resigned.push({ ...what, validUntil: r.validUntil });
        else result.skipped.push(what);
      }
      return { result: undefined };
    });
  }
  return result;
}
