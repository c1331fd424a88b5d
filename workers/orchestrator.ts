// Process entry point: the orchestrator worker (workflows on queue `conveyor`).
// Usage: tsx workers/orchestrator.ts [--config FILE]
import { runWorkersUntilSignal } from './main';
import { createOrchestratorWorker } from './create';

void runWorkersUntilSignal('orchestrator', async (connection, _argv, config) => [
  await createOrchestratorWorker({ connection, config }),
]);
