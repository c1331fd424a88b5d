// Promote stage (`…/promote`): the very artifacts that passed staging — the same keys, their SHA-256
// checked again by the publisher, never rebuilt — go to the production repositories and the docs
// site to the production docs prefix, channel from the branch rule. Promoting the same build twice
// changes nothing; promoting an older build than the channel already holds is refused unless forced.
// Runs recorded before artifact keys carried the commit promote from the keys they recorded; the
// publisher's ownership checks (publish.ts) apply to them as to any publish.
import { ApplicationFailure, patched, proxyActivities } from '@temporalio/workflow';
import type { OrchestratorActivities } from '../../activities';
import { FailureType } from '../../common/failures';
import { publishUnderLock, type PublishStageInput, type PublishStageResult } from './publish';

export interface PromoteStageInput extends Omit<PublishStageInput, 'environment'> {
  /** `<version>-<build>` of the artifacts. */
  version: string;
  force?: boolean;
  /** The pipeline's own promotion: a newer build already in the channel makes this one moot, so it
   * is skipped (the run ends `superseded`) instead of refused. Operators' promotions refuse. */
  skipIfOlder?: boolean;
}

export type PromoteStageResult = PublishStageResult & { skipped?: string };

const repository = proxyActivities<OrchestratorActivities>({
  startToCloseTimeout: '2 minutes',
  retry: { maximumAttempts: 5 },
});

export async function promoteStage(input: PromoteStageInput): Promise<PromoteStageResult> {
  // The "newer build already in production" check runs under the channel's publish lock, so two
  // promotions cannot both pass it and the later (older) one move production back. Runs recorded
  // before the patch checked first and locked after.
  if (patched('promote-check-under-lock')) {
    return publishUnderLock({ ...input, environment: 'production' }, () => olderThanProduction(input));
  }
  const skipped = await olderThanProduction(input);
  return skipped ?? publishUnderLock({ ...input, environment: 'production' });
}

/** A result that skips this promotion when production holds a newer build (or the refusal);
 * undefined when it may go ahead. Same build again: idempotent, goes ahead. */
export async function olderThanProduction(input: PromoteStageInput): Promise<PromoteStageResult | undefined> {
  if (input.force) return undefined;
  for (const p of input.packages) {
    const spec = input.repository.distroSpecs[p.distro];
    for (const name of [...new Set(p.artifacts.map((a) => a.name))]) {
      const { versions } = await repository.publishedVersions({
        environment: 'production',
        channel: input.channel,
        distro: p.distro,
        distroSpec: spec,
        name,
      });
      const newest = versions[0];
      // A newer one already there: refuse (numeric build order within one project version; the
      // publisher compares full versions for retention).
      if (newest && newest !== input.version && isNewer(newest, input.version)) {
        if (input.skipIfOlder) {
          const skipped = `production ${input.channel} already holds ${name} ${newest} (${p.distro}), newer than ${input.version}`;
          return { environment: 'production', channel: input.channel, repositories: [], skipped };
        }
        throw ApplicationFailure.create({
          type: FailureType.OlderThanPublished,
          message: `production ${input.channel} already holds ${name} ${newest} (${p.distro}), newer than ${input.version}: not promoting (force to override)`,
          nonRetryable: true,
        });
      }
    }
  }
  return undefined;
}

/** Whether version `a` sorts after `b` (`<x.y.z>-<build>`, numeric parts compared in order). */
export function isNewer(a: string, b: string): boolean {
  const parts = (v: string) => v.split(/[.\-+~]/).map((x) => (/^\d+$/.test(x) ? Number(x) : x));
  const pa = parts(a);
  const pb = parts(b);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? 0;
    const y = pb[i] ?? 0;
    if (x === y) continue;
    if (typeof x === 'number' && typeof y === 'number') return x > y;
    return String(x) > String(y);
  }
  return false;
}
