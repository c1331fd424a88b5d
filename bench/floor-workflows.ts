// Workflows for the floors the orchestration benchmarks compare against (bundled for an
// in-process bench worker): a parent running one child that runs one no-op activity, and a
// trivial workflow doing a given number of activity and workflow tasks.
import { executeChild, proxyActivities } from '@temporalio/workflow';

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

async function sequence(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await noop();
}

export async function capacityChild(activities: number): Promise<void> {
  await sequence(activities);
}

/**
 * Shaped like a pipeline: `children` child workflows one after the other, `activities` no-op
 * activities in all, spread over the parent and its children, each sequence one at a time.
 */
export async function capacityWorkflow(input: { activities: number; children: number }): Promise<void> {
  const each = Math.floor(input.activities / (input.children + 1));
  await sequence(input.activities - each * input.children);
  for (let c = 0; c < input.children; c++) await executeChild(capacityChild, { args: [each] });
}
