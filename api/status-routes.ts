// Read-only endpoints for load balancers, monitoring and people: /healthz (the process answers),
// /readyz (Temporal answers), /runs/<workflowId> (a pipeline's `status` query), /metrics
// (Prometheus). Admin actions (retry, abort, approve) are deliberately not exposed over HTTP.
// /readyz is not a load-balancer check: while Temporal is down the webhook still accepts
// pushes into the spool, so taking the API out of rotation would lose deliveries.
// /runs and /metrics tell an outsider which repositories, branches and commits exist and how
// busy the chain is: server.ts serves them on the status listener (loopback by default) or with
// a bearer token, never openly on the webhook listener.
import { pipelineId } from '../common/ids';
import type { ApiMetrics } from './metrics';
import { classifyQueryError } from './query-errors';
import { json, type Reply } from './reply';
import type { Spool } from './spool';
import type { TemporalGate } from './temporal-gate';

export interface StatusDeps {
  gate: TemporalGate;
  spool: Spool;
  metrics: ApiMetrics;
  /** The orchestrator's task queue, named when no worker answers. */
  taskQueue: string;
  /** How long the status query may wait for a worker (the gate's time limit). */
  queryTimeoutMs: number;
}

/** Every pipeline ID starts so (common/ids.ts); other workflows have no `status` for the outside. */
const PIPELINE_PREFIX = pipelineId('', '', '').replace(/\/+$/, '/');

const UNREACHABLE = 'Temporal is unreachable: check temporal.address and that the Temporal server runs';

export function createStatusRoutes(deps: StatusDeps) {
  /** No worker answered the query: what the server itself knows, or why even that failed. */
  async function withoutWorker(workflowId: string, queryError: string): Promise<Reply> {
    const error =
      `no orchestrator worker answered the status query of ${workflowId} within ${deps.queryTimeoutMs} ms ` +
      `(${queryError}): is the orchestrator worker running? It polls task queue ${deps.taskQueue}; ` +
      'see `conveyor workers`. `server` is what the Temporal server itself knows of the run.';
    try {
      return json(504, { error, server: await deps.gate.describe(workflowId) });
    } catch (err) {
      const kind = classifyQueryError(err);
      if (kind === 'not-found') return json(404, { error: `no run ${workflowId}` });
      // describe() needs no worker: if it does not answer either, the server is the problem.
      if (kind === 'unreachable' || kind === 'no-worker') return json(503, { error: UNREACHABLE });
      return json(504, { error, describeError: (err as Error).message });
    }
  }

  return {
    healthz(): Reply {
      return json(200, { status: 'ok' });
    },

    async readyz(): Promise<Reply> {
      const spooled = deps.spool.depth();
      return (await deps.gate.probe())
        ? json(200, { status: 'ready', temporal: 'reachable', spooled })
        : json(503, { status: 'unavailable', temporal: 'unreachable', spooled });
    },

    async run(workflowId: string): Promise<Reply> {
      if (!workflowId.startsWith(PIPELINE_PREFIX)) return json(404, { error: `${workflowId} is not a pipeline run` });
      try {
        return json(200, await deps.gate.status(workflowId));
      } catch (err) {
        const message = (err as Error).message;
        switch (classifyQueryError(err)) {
          case 'not-found':
            return json(404, { error: message });
          case 'unreachable':
            return json(503, { error: UNREACHABLE });
          case 'no-worker':
            return withoutWorker(workflowId, message);
          default:
            return json(502, { error: `status query failed: ${message}` });
        }
      }
    },

    metrics(): Reply {
      deps.metrics.setSpoolDepth(deps.spool.depth());
      return { status: 200, body: deps.metrics.render(), text: { contentType: 'text/plain; version=0.0.4' } };
    },
  };
}
