// Every call the API makes to Temporal goes through here, because GitHub gives a delivery 10
// seconds: each call has a hard time limit (the SDK's own retries can outlast a gRPC deadline),
// and a failure is classified as "Temporal unavailable" (spool and retry) or not. The outage and
// the recovery are logged once each, not per request. A connection the API made itself is
// rebuilt when it stays down: the channel's reconnect backoff grows to minutes in a long outage.
import { isGrpcServiceError, QueryNotRegisteredError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import type pino from 'pino';
import type { PipelineInput, PipelineStatus } from '../common/types';
import { statusQuery } from '../workflows/messages';
import type { ApiMetrics, StartSource } from './metrics';
import { pipelineId } from '../common/ids';
import { createRecentStarts, type RecentStarts } from './recent-starts';
import { describeRun, type RunSummary } from './run-summary';
import { startPipeline, type StartOutcome } from './start-pipeline';

/** A call that did not answer within its time limit. */
export class TemporalTimeoutError extends Error {
  constructor(what: string, ms: number) {
    super(`${what}: no answer from Temporal within ${ms} ms`);
    this.name = 'TemporalTimeoutError';
  }
}

export class RunNotFoundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunNotFoundError';
  }
}

interface Conn {
  client: Promise<Client>;
  /** Calls in progress on this connection, settled or not by their time limit. */
  calls: Set<Promise<unknown>>;
  connectedAt: number;
}

// gRPC codes that mean "try again later": CANCELLED, UNKNOWN, DEADLINE_EXCEEDED,
// RESOURCE_EXHAUSTED, ABORTED, INTERNAL, UNAVAILABLE.
const TRANSIENT_CODES = new Set([1, 2, 4, 8, 10, 13, 14]);

/** True when the error says Temporal could not be reached or was too slow, not that it refused. */
export function isUnavailable(err: unknown): boolean {
  if (err instanceof TemporalTimeoutError) return true;
  const grpc = isGrpcServiceError(err) ? err : (err as { cause?: unknown })?.cause;
  if (isGrpcServiceError(grpc)) return TRANSIENT_CODES.has(grpc.code);
  // Not a gRPC answer at all (connecting failed, a socket broke): nothing was refused.
  return true;
}

export interface TemporalGateOptions {
  /** A client the caller owns; the gate never closes or replaces it. */
  client?: Client;
  /** Or: how to connect. The gate owns those connections, rebuilds one that stays down and
   * closes the last one in close(). */
  connect?: () => Promise<Client>;
  taskQueue: string;
  address: string;
  startTimeoutMs: number;
  logger: pino.Logger;
  metrics: ApiMetrics;
  /** A failing owned connection older than this is replaced by a new one (default 10 s). */
  rebuildAfterMs?: number;
  /** The runs known to exist, answering duplicate starts without a call (default: 5 min, 10,000 entries). */
  recent?: RecentStarts;
}

export interface TemporalGate {
  /** False from a failed call until the next successful one. */
  readonly up: boolean;
  /** Starts the pipeline once per workflow ID; concurrent starts of one ID share one call, and a
   * start of a run this process has recently seen exist makes none (recent-starts.ts). */
  start(input: PipelineInput, source: StartSource): Promise<StartOutcome>;
  /** True when the run with this workflow ID recently existed: no call to Temporal. */
  known(workflowId: string): boolean;
  /** The run's `status` query; RunNotFoundError for an unknown workflow. */
  status(workflowId: string): Promise<PipelineStatus>;
  /** What the server knows of a run without a worker (describe of it and its running children). */
  describe(workflowId: string): Promise<RunSummary>;
  /** Any other call (chat actions: Updates, visibility), with a hard time limit; not a health signal. */
  run<T>(what: string, ms: number, fn: (client: Client) => Promise<T>): Promise<T>;
  /** True when Temporal answers a cheap call now. */
  probe(): Promise<boolean>;
  /** Called on every transition from down to up. */
  onRecovery(fn: () => void): void;
  close(): Promise<void>;
}

export function createTemporalGate(o: TemporalGateOptions): TemporalGate {
  if (!o.client && !o.connect) throw new Error('createTemporalGate: needs a client or a connect function');
  const rebuildAfterMs = o.rebuildAfterMs ?? 10_000;
  let conn: Conn | undefined = o.client
    ? { client: Promise.resolve(o.client), calls: new Set(), connectedAt: Date.now() }
    : undefined;
  const retiring = new Set<Promise<void>>();
  let up = true;
  let downSince = 0;
  let closed = false;
  const inflight = new Map<string, Promise<StartOutcome>>();
  const recent = o.recent ?? createRecentStarts();
  const recoveryListeners: (() => void)[] = [];
  let probing: Promise<boolean> | undefined;

  function connection(): Conn {
    if (!conn) {
      const c: Conn = { client: o.connect!(), calls: new Set(), connectedAt: Date.now() };
      c.client.then(
        () => (c.connectedAt = Date.now()),
        () => {
          if (conn === c) conn = undefined;
        },
      );
      conn = c;
    }
    return conn;
  }

  /** Closes an owned connection once no call uses it: the SDK's gRPC retry interceptor retries
   * from a timer, and a retry on a closed channel throws out of that timer, uncaught. Calls end by
   * their deadline plus one retry interval (5 s at most). */
  function retire(c: Conn): Promise<void> {
    const done = Promise.allSettled([...c.calls])
      .then(() => c.client)
      .then((client) => client.connection.close())
      .catch(() => undefined);
    retiring.add(done);
    void done.finally(() => retiring.delete(done));
    return done;
  }

  function wentDown(err: unknown): void {
    if (up) {
      up = false;
      downSince = Date.now();
      o.metrics.setTemporalUp(false);
      o.logger.error(
        { address: o.address, err: (err as Error)?.message },
        'Temporal unreachable: verified pushes are spooled until it is back',
      );
    }
    // The gRPC channel retries a dead server with a growing backoff; a fresh connection does not wait.
    if (o.connect && conn && Date.now() - conn.connectedAt >= rebuildAfterMs) {
      const old = conn;
      conn = undefined;
      void retire(old);
    }
  }

  function cameUp(): void {
    if (up) return;
    up = true;
    o.metrics.setTemporalUp(true);
    o.logger.info({ address: o.address, downForMs: Date.now() - downSince }, 'Temporal reachable again');
    for (const fn of recoveryListeners) fn();
  }

  /** Runs one call with a hard time limit; `health` calls also record whether Temporal answered
   * (a status query can time out because no worker polls its queue, which is no outage). */
  async function call<T>(what: string, ms: number, fn: (c: Client) => Promise<T>, health = true): Promise<T> {
    if (closed) throw new Error('the API is shutting down');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TemporalTimeoutError(what, ms)), ms);
    });
    const c = connection();
    const run = c.client.then((client) => client.withDeadline(Date.now() + ms, () => fn(client)));
    c.calls.add(run);
    void run.then(
      () => c.calls.delete(run),
      () => c.calls.delete(run), // settled after a timeout too: nobody else awaits it then
    );
    try {
      const result = await Promise.race([run, timeout]);
      if (health) cameUp();
      return result;
    } catch (err) {
      if (health && isUnavailable(err)) wentDown(err);
      else if (health) cameUp(); // Temporal answered, if only to refuse
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    get up() {
      return up;
    },
    start(input, source) {
      const workflowId = pipelineId(input.repository.name, input.branch, input.sha);
      if (recent.has(workflowId)) return Promise.resolve({ workflowId, started: false });
      const joined = inflight.get(workflowId);
      if (joined) return joined.then((r) => ({ ...r, started: false }));
      const t0 = process.hrtime.bigint();
      const started = call('start', o.startTimeoutMs, (c) => startPipeline(c, input, o.taskQueue))
        .then((outcome) => {
          if (outcome.started) o.metrics.runStarted(source);
          recent.add(outcome.workflowId);
          return outcome;
        })
        .finally(() => {
          inflight.delete(workflowId);
          o.metrics.startLatency(Number(process.hrtime.bigint() - t0) / 1e9);
        });
      inflight.set(workflowId, started);
      return started;
    },
    known(workflowId) {
      return recent.has(workflowId);
    },
    async status(workflowId) {
      try {
        return await call(
          'status query',
          o.startTimeoutMs,
          (c) => c.workflow.getHandle(workflowId).query(statusQuery),
          false,
        );
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) throw new RunNotFoundError(`no run ${workflowId}`);
        if (err instanceof QueryNotRegisteredError) throw new RunNotFoundError(`${workflowId} is not a pipeline run`);
        throw err;
      }
    },
    describe(workflowId) {
      // Not a health signal: "not found" is an answer, and the caller classifies the rest.
      return call('describe', o.startTimeoutMs, (c) => describeRun(c, workflowId), false);
    },
    run(what, ms, fn) {
      return call(what, ms, fn, false);
    },
    probe() {
      // /readyz is public on the webhook listener: concurrent requests share one call, so a flood
      // of them costs Temporal one probe at a time.
      probing ??= call('probe', 2000, (c) => c.connection.workflowService.getSystemInfo({}))
        .then(
          () => true,
          () => false,
        )
        .finally(() => (probing = undefined));
      return probing;
    },
    onRecovery(fn) {
      recoveryListeners.push(fn);
    },
    async close() {
      closed = true;
      const last = conn;
      conn = undefined;
      // An owned connection is closed after its calls; a caller's client only waits for them.
      if (last && o.connect) void retire(last);
      else if (last) await Promise.allSettled([...last.calls]);
      await Promise.all([...retiring]);
    },
  };
}
