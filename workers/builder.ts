// Process entry point: a build host (activities on `build-<distro>` for each distro in the config,
// or only those named with --distro a,b).
// Usage: tsx workers/builder.ts [--config FILE] [--distro bookworm,el9]
import { runWorkersUntilSignal } from './main';
import { createBuilderWorkers } from './create';
import { connectClient } from './temporal';

void runWorkersUntilSignal('builder', async (connection, argv, config) =>
  createBuilderWorkers({
    connection,
    config,
    // For the e2e step's host-exec relay (Updates to the verify stage of the same run).
    client: await connectClient(config),
    distros: argv.distro?.split(',').filter(Boolean),
  }),
);
