// Shared process shell for worker entry points: parse flags, connect, run until SIGINT/SIGTERM,
// then shut down gracefully (in-flight activities are cancelled and reported, not lost).
import type { NativeConnection, Worker } from '@temporalio/worker';
import { ConfigError, loadConfig, resolveConfigPath, type ConveyorConfig } from '../config/conveyor';
import { secretEnvNames } from '../cli/local-stack/process-env';
import { createLogger, registerSecretValues } from './logging';
import { installRuntime } from './runtime';
import { connectNative } from './temporal';

export interface WorkerArgv {
  config?: string;
  distro?: string;
  metricsPort?: number;
}

function portOf(v: string | undefined): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`--metrics-port: not a port: ${v}`);
  return n;
}

export function parseWorkerArgv(args: string[]): WorkerArgv {
  const out: WorkerArgv = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--config') out.config = args[++i];
    else if (a.startsWith('--config=')) out.config = a.slice('--config='.length);
    else if (a === '--distro') out.distro = args[++i];
    else if (a.startsWith('--distro=')) out.distro = a.slice('--distro='.length);
    else if (a === '--metrics-port') out.metricsPort = portOf(args[++i]);
    else if (a.startsWith('--metrics-port=')) out.metricsPort = portOf(a.slice('--metrics-port='.length));
    else if (a === '--help' || a === '-h') {
      process.stdout.write(
        [
          'options:',
          '  --config FILE        conveyor.yml (or CONVEYOR_CONFIG)',
          '  --distro a,b         builder only: serve these build queues (default: every distro of the config)',
          '  --metrics-port N     Prometheus endpoint http://<workers.metricsHost>:N/metrics (SDK and Conveyor',
          '                       series); default workers.metricsPort (orchestrator) / workers.builderMetricsPort',
          'environment:',
          '  CONVEYOR_LOG_LEVEL   pino level (default info)',
          '  CONVEYOR_LOG_PRETTY  1: readable lines (pino-pretty) instead of JSON; default when stdout is a TTY',
          '',
        ].join('\n'),
      );
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
  try {
    const argv = parseWorkerArgv(process.argv.slice(2));
    const config = loadConfig(resolveConfigPath(argv.config, process.env));
    // The config's own secret variables, whatever their names: never in a log line.
    const names = secretEnvNames(config);
    registerSecretValues([...names.api, ...names.orchestrator, ...names.builder].map((n) => process.env[n]));
    const problems = refuse(config);
    if (problems.length > 0) throw new ConfigError(config.file, problems);
    // Before the first connection: the SDK creates its one Runtime at first use.
    const metricsPort =
      argv.metricsPort ?? (name === 'builder' ? config.workers.builderMetricsPort : config.workers.metricsPort);
    const metricsBindAddress = metricsPort ? `${config.workers.metricsHost}:${metricsPort}` : undefined;
    installRuntime(logger, { metricsBindAddress });
    if (metricsBindAddress) logger.info({ metrics: `http://${metricsBindAddress}/metrics` }, 'metrics endpoint');
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
