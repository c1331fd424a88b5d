// The Temporal SDK's runtime of a worker process: its logger routed to the process's pino logger
// (workers/logging.ts), and its Prometheus exporter when asked. Kept apart from logging.ts so the
// processes that only log (the API) do not load the worker package.
import type pino from 'pino';
import { Runtime, type LogLevel, type LogMetadata, type Logger } from '@temporalio/worker';

class PinoSdkLogger implements Logger {
  constructor(private readonly base: pino.Logger) {}
  log(level: LogLevel, message: string, meta?: LogMetadata): void {
    const fn = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' }[level] as pino.Level;
    this.base[fn](meta ?? {}, message);
  }
  trace(message: string, meta?: LogMetadata): void {
    this.log('TRACE', message, meta);
  }
  debug(message: string, meta?: LogMetadata): void {
    this.log('DEBUG', message, meta);
  }
  info(message: string, meta?: LogMetadata): void {
    this.log('INFO', message, meta);
  }
  warn(message: string, meta?: LogMetadata): void {
    this.log('WARN', message, meta);
  }
  error(message: string, meta?: LogMetadata): void {
    this.log('ERROR', message, meta);
  }
}

export interface RuntimeOptions {
  /** `host:port` of this process's Prometheus endpoint (`/metrics`): the SDK's own series (task
   * latencies, schedule-to-start, sticky cache, slots) and ours, emitted through the SDK's metric
   * meters (workflows/metrics.ts, activities/metrics.ts). Absent: no endpoint. */
  metricsBindAddress?: string;
}

let installed: RuntimeOptions | undefined;

/**
 * Installs the SDK runtime with the pino logger and, when asked, the Prometheus exporter. The
 * SDK allows one Runtime per process, created by its first use: call this before any worker or
 * NativeConnection exists. A second call with other options is refused rather than ignored, so a
 * metrics port never silently goes unserved.
 */
export function installRuntime(logger: pino.Logger, opts: RuntimeOptions = {}): void {
  if (installed) {
    if (installed.metricsBindAddress !== opts.metricsBindAddress)
      throw new Error(
        `the Temporal runtime is already installed with metrics ${installed.metricsBindAddress ?? 'off'}; ` +
          `cannot serve ${opts.metricsBindAddress ?? 'none'} as well (one runtime per process)`,
      );
    return;
  }
  installed = opts;
  Runtime.install({
    logger: new PinoSdkLogger(logger),
    ...(opts.metricsBindAddress
      ? {
          telemetryOptions: {
            metrics: {
              prometheus: {
                bindAddress: opts.metricsBindAddress,
                // Prometheus conventions: counters end in _total, durations in seconds.
                countersTotalSuffix: true,
                useSecondsForDurations: true,
              },
            },
          },
        }
      : {}),
  });
}
