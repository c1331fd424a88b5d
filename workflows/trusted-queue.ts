// Where trusted activities run: the fleet's host work (EC2, SSH, SSM, local hosts), git ancestry
// and the release push hold what repository code must never reach, so they run on the workflow's
// own queue, the orchestrator's (`conveyor`), whose workers never run repository code. Runs
// recorded before that scheduled them on `build-<distro>`, and the task queue is part of the
// ScheduleActivityTask command: replaying those histories must ask for the same queue, hence the
// patch.
import { patched } from '@temporalio/workflow';
import { buildQueue } from '../common/queues';

export const TRUSTED_QUEUE_PATCH = 'trusted-queue';

/**
 * The task queue of a trusted activity about to be scheduled: undefined (the workflow's own queue)
 * in a new run, the build queue of `legacyDistro` while an older run's history is replayed. Ask at
 * each scheduling, not once per stage: a run that was in flight when the workers were upgraded then
 * keeps the build queue for what it had scheduled and sends the rest to the orchestrator (the
 * upgraded builders no longer serve these activities); patched() records the switch in its history.
 */
export function trustedQueue(legacyDistro: string): string | undefined {
  return patched(TRUSTED_QUEUE_PATCH) ? undefined : buildQueue(legacyDistro);
}
