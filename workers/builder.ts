// Process entry point: a build host (activities on `build-<distro>` for each distro in the config,
// or only those named with --distro a,b).
// Usage: tsx workers/builder.ts [--config FILE] [--distro bookworm,el9]
import { runWorkersUntilSignal } from './main';
import { createBuilderWorkers } from './create';

void runWorkersUntilSignal('builder', (connection, argv, config) =>
  createBuilderWorkers({ connection, config, distros: argv.distro?.split(',').filter(Boolean) }),
);
