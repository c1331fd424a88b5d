// Shared process shell for worker entry points: parse flags, connect, run until SIGINT/SIGTERM,
// then shut down gracefully (in-flight activities are cancelled and reported, not lost).
import type { NativeConnection, Worker } from '@temporalio/worker';
import { ConfigError, loadConfig, resolveConfigPath, type ConveyorConfig } from '../config/conveyor';
import { createLogger, installRuntime } from './logging';
import { connectNative } from './temporal';

export interface WorkerArgv {
  config?: string;
  distro?: string;
}

export function parseWorkerArgv(args: string[]): WorkerArgv {
  const out: WorkerArgv = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--config') out.config = args[++i];
    else if (a.startsWith('--config=')) out.config = a.slice('--config='.length);
    else if (a === '--distro') out.distro = args[++i];
    else if (a.startsWith('--distro=')) out.distro = a.slice('--distro='.length);
    else if (a === '--help' || a === '-h') {
      process.stdout.write('options: --config FILE (or CONVEYOR_CONFIG)  --distro a,b (builder only)\n');
      process.exit(0);
    } else throw new Error(`unknown option ${a}`);
  }
  return out;
}

export async function runWorkersUntilSignal(
  name: string,
  make: (connection: NativeConnection, argv: WorkerArgv, config: ConveyorConfig) => Promise<Worker[]>,
  /** Settings only safe on a laptop that this process refuses (config/production.ts), each with its fix. */
  refuse: (config: ConveyorConfig) => string[] = () => [],
): Promise<void> {
  const logger = createLogger(name);
  installRuntime(logger);
  try {
    const argv = parseWorkerArgv(process.argv.slice(2));
    const config = loadConfig(resolveConfigPath(argv.config, process.env));
    const problems = refuse(config);
    if (problems.length > 0) throw new ConfigError(config.file, problems);
    const connection = await connectNative(config);
    const workers = await make(connection, argv, config);
    const stop = () => workers.forEach((w) => w.shutdown());
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    logger.info(
      { queues: workers.map((w) => w.options.taskQueue), address: config.temporal.address },
      'worker started',
    );
    await Promise.all(workers.map((w) => w.run()));
    await connection.close();
    logger.info('worker stopped');
  } catch (err) {
    logger.error(err instanceof ConfigError ? err.message : { err }, 'worker failed');
    process.exit(1);
  }
}
