// Process entry point: the orchestrator worker (workflows and orchestrator activities on queue `conveyor`:
// build numbers, locks, signing and publishing, releases, commit statuses, fleet work).
// Usage: tsx workers/orchestrator.ts [--config FILE]
// It refuses settings that are only safe on the local stack (the local host executor outside it,
// an http:// GitHub API beyond loopback), saying how to fix each.
import { chrootExecutorProblems, githubApiProblems } from '../config/production';
import { runWorkersUntilSignal } from './main';
import { createOrchestratorWorker } from './create';
import { connectClient } from './temporal';

void runWorkersUntilSignal(
  'orchestrator',
  async (connection, _argv, config) => [
    await createOrchestratorWorker({ connection, config, client: await connectClient(config) }),
  ],
  (config) => [...chrootExecutorProblems(config), ...githubApiProblems(config)],
);
