// Process entry point: the orchestrator worker (workflows and orchestrator activities on queue `conveyor`:
// build numbers, locks, signing and publishing, releases, commit statuses, chat messages, fleet work).
// Usage: tsx workers/orchestrator.ts [--config FILE]
// It refuses settings that are only safe on the local stack (the local host executor outside it,
// an http:// GitHub API beyond loopback), saying how to fix each.
// CONVEYOR_WORKFLOW_BUNDLE=<file>: a workflow bundle built ahead (bundleWorkflowCode of
// workflows/index.ts), so a restarted worker polls in seconds instead of bundling first; it must
// be built from the same code as the worker.
import { chrootExecutorProblems, githubApiProblems, slackApiProblems } from '../config/production';
import { runWorkersUntilSignal } from './main';
import { createOrchestratorWorker } from './create';
import { createLogger } from './logging';
import { ensureResignSchedule } from './resign-schedule';
import { connectClient } from './temporal';

void runWorkersUntilSignal(
  'orchestrator',
  async (connection, _argv, config) => {
    const client = await connectClient(config);
    const worker = await createOrchestratorWorker({
      connection,
      config,
      client,
      workflowBundlePath: process.env.CONVEYOR_WORKFLOW_BUNDLE || undefined,
    });
    // APT Releases expire (signing.validDays): the schedule that re-signs them follows this config.
    await ensureResignSchedule(client, config).catch((err: unknown) =>
      createLogger('orchestrator').warn(
        { err },
        'could not create or update the re-sign schedule: APT Releases expire signing.validDays after their last publish',
      ),
    );
    return [worker];
  },
  (config) => [...chrootExecutorProblems(config), ...githubApiProblems(config), ...slackApiProblems(config)],
);
