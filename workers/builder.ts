// Process entry point: a build host (activities on `build-<distro>` for each distro in the config,
// or only those named with --distro a,b).
// Usage: tsx workers/builder.ts [--config FILE] [--distro bookworm,el9]
import { runWorkersUntilSignal } from './main';
import { createBuilderWorkers } from './create';
import { createLogger } from './logging';
import { connectClient } from './temporal';

const logger = createLogger('builder');

void runWorkersUntilSignal('builder', async (connection, argv, config) =>
  createBuilderWorkers({
    connection,
    config,
    // For the e2e step's host-exec relay (Updates to the verify stage of the same run).
    client: await connectClient(config),
    distros: argv.distro?.split(',').filter(Boolean),
    onSandbox: (p) =>
      p.ok
        ? logger.info({ sandbox: p.description }, 'repository steps run sandboxed')
        : logger.warn(
            { sandbox: p.description },
            'no sandbox: steps of repositories without `sandbox: { mode: none }` will be refused',
          ),
  }),
);
