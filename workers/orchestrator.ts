// Process entry point: the orchestrator worker (workflows and orchestrator activities on queue `conveyor`).
// Usage: tsx workers/orchestrator.ts [--config FILE]
import { runWorkersUntilSignal } from './main';
import { createOrchestratorWorker } from './create';
import { connectClient } from './temporal';

void runWorkersUntilSignal('orchestrator', async (connection, _argv, config) => [
  await createOrchestratorWorker({ connection, config, client: await connectClient(config) }),
]);
