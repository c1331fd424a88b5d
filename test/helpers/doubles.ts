// What the workflow tests share: the patch markers of a history, and the results test doubles of
// the activities return when a test is about something else (a publish that changed the
// repository, a step that passed, a one-package build).
import { defaultPayloadConverter } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';
import type { BuildActivities, OrchestratorActivities } from '../../activities';

/** The patch IDs whose markers a history holds, in order. */
export function patchesIn(events: temporal.api.history.v1.IHistoryEvent[]): string[] {
  return events.flatMap((e) => {
    const data = e.markerRecordedEventAttributes?.details?.['patch-data']?.payloads?.[0];
    return data ? [defaultPayloadConverter.fromPayload<{ id: string }>(data).id] : [];
  });
}

type Published = Awaited<ReturnType<OrchestratorActivities['publishPackages']>>;
type Built = Awaited<ReturnType<BuildActivities['buildPackages']>>;
type StepInput = Parameters<BuildActivities['runStep']>[0];
type BuildInput = Parameters<BuildActivities['buildPackages']>[0];

/** A publish to an APT repository that changed it and uploaded `uploaded`. */
export function publishedResult(o: Partial<Published> = {}): Published {
  return {
    changed: true,
    uploaded: [],
    removed: [],
    repoUrlPath: 'apt',
    indexKeys: [],
    keyPath: 'keys/conveyor.asc',
    ...o,
  };
}

/** A step that passed at once. */
export function passedStep(i: StepInput) {
  return Promise.resolve({ step: i.step, exitCode: 0, headSha: i.sha, logKey: 'l', tail: '', durationMs: 1 });
}

/** One .deb named `name`, version 1.0.0-<build>, for `distro`. */
export function builtDeb(i: BuildInput, name: string, distro: string): Promise<Built> {
  return Promise.resolve({
    version: '1.0.0',
    build: i.build,
    artifacts: [
      {
        key: `k-${i.build}`,
        sha256: 'a'.repeat(64),
        size: 1,
        name,
        version: `1.0.0-${i.build}`,
        arch: 'all',
        format: 'deb' as const,
        distro,
        file: `${name}_1.0.0-${i.build}_all.deb`,
      },
    ],
    logKey: 'l',
    tail: '',
  });
}
