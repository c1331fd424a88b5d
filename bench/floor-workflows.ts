// Workflows for the floors the orchestration benchmarks compare against (bundled for an
// in-process bench worker): a parent running one child that runs one no-op activity, and a
// trivial workflow doing a given number of activity and workflow tasks.
import { executeChild, proxyActivities, sleep } from '@temporalio/workflow';

export interface FloorActivities {
  noop(): Promise<void>;
}

const { noop } = proxyActivities<FloorActivities>({ startToCloseTimeout: '1 minute' });

export async function floorChild(): Promise<void> {
  await noop();
}

export async function floorParent(): Promise<void> {
  await executeChild(floorChild, {});
}

/** `activities` no-op activities one after the other, plus `extraTasks` workflow tasks (1 ms timers). */
export async function capacityWorkflow(input: { activities: number; extraTasks: number }): Promise<void> {
  for (let i = 0; i < input.activities; i++) await noop();
  for (let i = 0; i < input.extraTasks; i++) await sleep(1);
}
