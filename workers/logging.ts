// pino for every process; the SDK's runtime, workflow and activity loggers are routed to it so each
// line carries the workflow ID, activity and task queue the SDK attaches.
import pino from 'pino';
import { Runtime, type LogLevel, type LogMetadata, type Logger } from '@temporalio/worker';

export function createLogger(name: string): pino.Logger {
  return pino({ name, level: process.env.CONVEYOR_LOG_LEVEL ?? 'info' });
}

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

let installed = false;

/** Installs the SDK runtime with the pino logger once per process. */
export function installRuntime(logger: pino.Logger): void {
  if (installed) return;
  installed = true;
  Runtime.install({ logger: new PinoSdkLogger(logger) });
}
