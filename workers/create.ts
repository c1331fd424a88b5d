// Worker factories shared by the process entry points (workers/orchestrator.ts, workers/builder.ts),
// the local stack and the tests. The orchestrator serves the workflows and the orchestrator
// activities (build numbers, locks, repository publishing, commit statuses, the fleet's host work,
// git ancestry, release tags) on `conveyor`: it never runs repository code, so it alone holds the
// GitHub token, the signing key, SSH settings and the local hosts. A builder serves the build
// activities only (steps, packages, docs, e2e), on `build-<distro>`: build hosts never run
// workflow code, and hold none of those. Its Temporal client is for the e2e host-exec relay.
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { Worker, type NativeConnection } from '@temporalio/worker';
import { builderSandbox, createBuildActivities, createOrchestratorActivities } from '../activities';
import type { SandboxProbe } from '../activities/exec/sandbox';
import { createAwsClients } from '../activities/storage/s3';
import type { ConveyorConfig } from '../config/conveyor';
import { buildQueue } from '../common/queues';
import { activityContextInterceptor } from './activity-context';
import { workflowBundleInChild } from './workflow-bundle';

export interface WorkerOptions {
  connection: NativeConnection;
  config: ConveyorConfig;
  /** Path of a pre-built bundle (tests build one per run); otherwise workflows/ is bundled at start. */
  workflowBundlePath?: string;
  identity?: string;
}

/** How long SIGTERM waits for running activities: long enough for the longest step to finish. */
export function shutdownGraceSeconds(config: ConveyorConfig): number {
  const longest = Math.max(0, ...config.repositories.map((r) => r.stepTimeoutSeconds));
  return config.workers.shutdownGraceSeconds ?? longest + 60;
}

export function workflowsPath(): string {
  return path.resolve(__dirname, '..', 'workflows', 'index.ts');
}

export async function createOrchestratorWorker(opts: WorkerOptions & { client: Client }): Promise<Worker> {
  // Not bundled in this process: webpack's peak and leftovers would stay in the worker's RSS
  // (workflow-bundle.ts).
  const bundlePath = opts.workflowBundlePath ?? (await workflowBundleInChild());
  try {
    return await createOrchestrator(opts, bundlePath);
  } finally {
    // Worker.create has read the file; a bundle built here is not kept.
    if (!opts.workflowBundlePath) fs.rmSync(path.dirname(bundlePath), { recursive: true, force: true });
  }
}

function createOrchestrator(opts: WorkerOptions & { client: Client }, bundlePath: string): Promise<Worker> {
  return Worker.create({
    connection: opts.connection,
    namespace: opts.config.temporal.namespace,
    taskQueue: opts.config.temporal.taskQueue,
    ...(opts.identity ? { identity: opts.identity } : {}),
    shutdownGraceTime: `${shutdownGraceSeconds(opts.config)} seconds`,
    maxConcurrentActivityTaskExecutions: opts.config.workers.orchestratorMaxConcurrentActivities,
    // An activity learns of its cancellation only from the answer to a heartbeat the worker sends,
    // and the SDK sends at most one per 0.8 × heartbeat timeout (48 s for the fleet's 1 minute).
    // Activities under a lock are cancelled with WAIT_CANCELLATION_COMPLETED, so that delay held
    // the lock (and the hosts' rollback) for up to a minute after an abort or a terminate: send
    // heartbeats at least every 5 s (the fleet's executors tick every 5 s, activities/fleet/executor.ts).
    maxHeartbeatThrottleInterval: '5 seconds',
    workflowBundle: { codePath: bundlePath },
    // The SDK's default sizes the sticky cache from the heap limit (~2,300 workflows with Node's
    // 4 GB default here): under 100 concurrent runs it held every pipeline, stage child, lock and
    // branch-state entity, and the orchestrator peaked at ~500 MB (538–606 MB with a cache of 500,
    // 471 MB with 100 and with 50: the rest is its modules and activities). A bounded cache costs a
    // replay when an evicted workflow gets its next task, which the workflows here (tens of events)
    // make cheap (no more CPU at 100 in bench/concurrency.ts); workers.maxCachedWorkflows sets it.
    maxCachedWorkflows: opts.config.workers.maxCachedWorkflows,
    // Stage, distro and host on every activity log line and activity metric (activity-context.ts).
    interceptors: { activity: [activityContextInterceptor] },
    activities: createOrchestratorActivities({
      config: opts.config,
      aws: createAwsClients(opts.config),
      client: opts.client,
    }),
  });
}

/** One worker per distro given (default: every distro of the config), each on its build queue.
 * `client`: the e2e relay's (workers/temporal.ts connectClient), closed by the caller. */
export async function createBuilderWorkers(
  opts: WorkerOptions & { client: Client; distros?: string[]; onSandbox?: (probe: SandboxProbe) => void },
): Promise<Worker[]> {
  // Probed at start, so the log says which isolation holds here before any step arrives (and a
  // worker that cannot sandbox says why at once; its steps are then refused, see sandbox.ts).
  const sandbox = builderSandbox(opts.config);
  opts.onSandbox?.(await sandbox.probe());
  const activities = createBuildActivities({
    config: opts.config,
    aws: createAwsClients(opts.config),
    client: opts.client,
    sandbox,
  });
  const distros = opts.distros ?? Object.keys(opts.config.distros);
  return Promise.all(
    distros.map((d) =>
      Worker.create({
        connection: opts.connection,
        namespace: opts.config.temporal.namespace,
        taskQueue: buildQueue(d),
        ...(opts.identity ? { identity: `${opts.identity}/${d}` } : {}),
        // SIGTERM lets running steps finish; a build host runs only so many steps at once.
        shutdownGraceTime: `${shutdownGraceSeconds(opts.config)} seconds`,
        maxConcurrentActivityTaskExecutions: opts.config.workers.maxConcurrentActivities,
        interceptors: { activity: [activityContextInterceptor] },
        activities,
      }),
    ),
  );
}
