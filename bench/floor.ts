// The floors, measured on the same dev server as ours: an in-process worker for
// bench/floor-workflows.ts on a queue of its own.
import crypto from 'node:crypto';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import type { BenchContext } from './harness';
import { childSpans, countTasks, historyOf } from './history';
import { quietLogger } from './replay';

export interface Floor {
  /** One parent → child → no-op activity; the child's wall time as the parent saw it (ms). */
  childWithOneActivity(): Promise<number>;
  /** `count` capacity workflows started at once; ms until all completed, and the tasks of one. */
  capacity(
    count: number,
    activities: number,
    children: number,
  ): Promise<{ ms: number; tasks: { workflowTasks: number; activityTasks: number } }>;
}

export async function startFloor(ctx: BenchContext, address: string, client: Client): Promise<Floor> {
  const taskQueue = `bench-floor-${crypto.randomBytes(3).toString('hex')}`;
  const bundle = await bundleWorkflowCode({
    workflowsPath: path.join(__dirname, 'floor-workflows.ts'),
    logger: quietLogger,
  });
  const connection = await NativeConnection.connect({ address });
  const worker = await Worker.create({
    connection,
    taskQueue,
    workflowBundle: bundle,
    activities: { noop: () => Promise.resolve() },
  });
  const running = worker.run();
  ctx.defer(async () => {
    worker.shutdown();
    await running;
    await connection.close();
  });
  let n = 0;
  return {
    async childWithOneActivity() {
      const workflowId = `floor-${taskQueue}-${n++}`;
      await client.workflow.execute('floorParent', { taskQueue, workflowId, args: [] });
      const [span] = childSpans(await historyOf(client, workflowId));
      return span.endMs - span.startMs;
    },
    async capacity(count, activities, children) {
      const t0 = performance.now();
      const batch = n++;
      const handles = await Promise.all(
        Array.from({ length: count }, (_, i) =>
          client.workflow.start('capacityWorkflow', {
            taskQueue,
            workflowId: `capacity-${taskQueue}-${batch}-${i}`,
            args: [{ activities, children }],
          }),
        ),
      );
      await Promise.all(handles.map((h) => h.result()));
      const elapsed = performance.now() - t0;
      const events = await historyOf(client, handles[0].workflowId);
      const tasks = countTasks(events);
      for (const c of childSpans(events)) {
        const t = countTasks(await historyOf(client, c.workflowId));
        tasks.workflowTasks += t.workflowTasks;
        tasks.activityTasks += t.activityTasks;
      }
      return { ms: elapsed, tasks };
    },
  };
}
