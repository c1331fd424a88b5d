// What the best-effort senders share (commit statuses to GitHub, chat messages to Slack): they run
// as activities but also as plain functions in tests, never throw, wait out rate limits with an
// abortable sleep, and never let a credential into a message they log or return.
import { Context } from '@temporalio/activity';

export interface QuietLogger {
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
}

const noop = () => undefined;

/** The activity context, or undefined outside an activity. */
export function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/** The activity's logger, or one that says nothing outside an activity. */
export function activityLogger(): QuietLogger {
  const ctx = activityContext();
  return ctx ? ctx.log : { info: noop, warn: noop };
}

/** `text` with every occurrence of `secret` replaced. */
export function redact(text: string, secret: string | undefined): string {
  return secret ? text.split(secret).join('[redacted]') : text;
}

/** The low-level cause of a failed request (ECONNREFUSED, a timeout), else its message. */
export function causeOf(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
  return cause?.code ?? cause?.message ?? (err as Error)?.message ?? String(err);
}

/** Heartbeats every 5 s while a sender runs inside an activity, so it is alive while it waits on
 * the remote or on a Retry-After: the workflow's heartbeat timeout then finds a sender whose
 * worker died in seconds, and the activity learns of a cancellation (it comes with a heartbeat's
 * answer). Returns the function that stops it; a no-op outside an activity. */
export function keepAlive(): () => void {
  const ctx = activityContext();
  if (!ctx) return noop;
  ctx.heartbeat();
  const beat = setInterval(() => ctx.heartbeat(), 5000);
  return () => clearInterval(beat);
}

/** Waits `ms`, or less when `signal` aborts (never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
