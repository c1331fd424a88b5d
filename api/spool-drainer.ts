// Starts the spooled pushes once Temporal takes them again, oldest first, one at a time so the
// order of pushes is kept. Each entry holds only the push's facts: whether it still starts a run,
// and with which commands and branch rule, is decided here from the config this process runs
// with now, not the one it was received under. A push the current config no longer wants (its
// repository removed, its branch no longer monitored) is dropped with the reason logged. A pass stops at the first "unavailable" and the next one waits with a
// growing backoff; Temporal's recovery (seen by any call, e.g. /readyz) starts a pass at once.
// The workflow ID makes every start idempotent, so an entry that was started but not yet removed
// when the process died, or a push both spooled and redelivered, still gives one run.
import type pino from 'pino';
import { pipelineId } from '../common/ids';
import type { ConveyorConfig } from '../config/conveyor';
import { decideFacts } from './github-push';
import type { ApiMetrics } from './metrics';
import { SpoolEntryError, type Spool } from './spool';
import { isUnavailable, type TemporalGate } from './temporal-gate';

export interface DrainerOptions {
  /** The config to decide with, read at each entry: the current one. */
  config: () => ConveyorConfig;
  spool: Spool;
  gate: TemporalGate;
  logger: pino.Logger;
  metrics: ApiMetrics;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

export interface Drainer {
  /** A new entry, or a reason to look again: runs a pass unless one waits out its backoff. */
  kick(): void;
  /** Stops scheduling passes and waits for the running one. */
  stop(): Promise<void>;
}

type PassResult = 'empty' | 'retry';

export function createDrainer(o: DrainerOptions): Drainer {
  const initial = o.initialBackoffMs ?? 500;
  const max = o.maxBackoffMs ?? 15_000;
  let backoff = 0;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = false;

  async function pass(): Promise<PassResult> {
    let stuck = false;
    for (;;) {
      const names = await o.spool.list();
      if (names.length === 0) return 'empty';
      let progress = false;
      for (const name of names) {
        let entry;
        try {
          entry = await o.spool.read(name);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // removed meanwhile
          if (!(err instanceof SpoolEntryError)) throw err;
          o.logger.error({ file: name, err: err.message }, 'spool entry unreadable: moved to corrupt/');
          await o.spool.quarantine(name);
          continue;
        }
        const { push } = entry;
        const log = o.logger.child({
          delivery: entry.deliveryId,
          repository: push.repository,
          branch: push.branch,
          sha: push.sha,
        });
        if (entry.legacy) log.info({ file: name }, 'old-format spool entry: only its facts are used');
        const decision = decideFacts(o.config(), push);
        if (decision.action !== 'start') {
          log.warn(
            { reason: decision.reason, file: name },
            `spooled push dropped: ${decision.reason.replace(/^ignored: /, '')} in the current config`,
          );
          await o.spool.remove(name);
          progress = true;
          continue;
        }
        const workflowId = pipelineId(decision.input.repository.name, push.branch, push.sha);
        try {
          const outcome = await o.gate.start(decision.input, 'spool');
          log.info(
            {
              workflowId: outcome.workflowId,
              started: outcome.started,
              waitedMs: Date.now() - Date.parse(entry.receivedAt),
            },
            outcome.started ? 'spooled push started' : 'spooled push was already started',
          );
        } catch (err) {
          if (isUnavailable(err)) return 'retry';
          // Temporal refused this one (e.g. an unregistered search attribute): keep it for after
          // the fix, but do not let it hold back the pushes behind it.
          log.error(
            { workflowId, err: (err as Error).message },
            'Temporal refused to start a spooled push; kept in the spool',
          );
          stuck = true;
          continue;
        }
        await o.spool.remove(name);
        progress = true;
      }
      if (stuck && !progress) return 'retry';
      if (stuck) stuck = false;
    }
  }

  function run(): void {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    clearTimeout(timer);
    timer = undefined;
    again = false;
    running = pass()
      .catch((err: unknown) => {
        o.logger.error({ err: (err as Error).message, dir: o.spool.dir }, 'spool pass failed');
        return 'retry' as const;
      })
      .then((result) => {
        running = undefined;
        if (result === 'retry') {
          backoff = backoff ? Math.min(max, backoff * 2) : initial;
          // Recovered during the pass: look again soon rather than after the full backoff.
          schedule(again && o.gate.up ? initial : backoff);
        } else {
          backoff = 0;
          if (again) run();
        }
      });
  }

  function schedule(ms: number): void {
    if (stopped || timer) return;
    timer = setTimeout(() => {
      timer = undefined;
      run();
    }, ms);
    timer.unref();
  }

  o.gate.onRecovery(() => run());
  if (o.spool.depth() > 0) run(); // left by an earlier process

  return {
    kick() {
      // While a backoff runs and Temporal is known to be down, the timer decides.
      if (timer && !o.gate.up) return;
      run();
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      timer = undefined;
      await running;
    },
  };
}
