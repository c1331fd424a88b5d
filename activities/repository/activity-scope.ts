// The activity context, made optional: the publish functions run as Temporal activities (heartbeats,
// cancellation, the activity logger) and also as plain functions (tests, the CLI), where
// `Context.current()` throws. Everything here calls `activityScope()` instead of the SDK directly.
// A ticker repeats the last progress every few seconds, so one long step (a large download, a
// slow S3 request) does not look like a dead worker to the heartbeat timeout.
import { Context } from '@temporalio/activity';

export interface ActivityScope {
  /** Aborted when Temporal cancels the activity; undefined outside an activity. */
  signal: AbortSignal | undefined;
  /** Details of the last heartbeat of the previous attempt, when there was one. */
  previousProgress: unknown;
  heartbeat(details: Record<string, unknown>): void;
  info(message: string, meta?: Record<string, unknown>): void;
  /** Throws the cancellation reason (a CancelledFailure) once cancellation was requested. */
  checkCancelled(): void;
  /** Stops the ticker; call once when the activity ends. */
  close(): void;
}

export function activityScope(tickMs = 5000): ActivityScope {
  let ctx: Context | undefined;
  try {
    ctx = Context.current();
  } catch {
    ctx = undefined;
  }
  const signal = ctx?.cancellationSignal;
  let last: Record<string, unknown> = { phase: 'start' };
  const ticker = ctx ? setInterval(() => ctx.heartbeat(last), tickMs) : undefined;
  ticker?.unref();
  return {
    signal,
    previousProgress: ctx?.info.heartbeatDetails as unknown,
    heartbeat(details) {
      last = details;
      ctx?.heartbeat(details);
    },
    info(message, meta) {
      ctx?.log.info(message, meta);
    },
    checkCancelled: () => signal?.throwIfAborted(),
    close: () => clearInterval(ticker),
  };
}
