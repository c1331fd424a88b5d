// Read-only endpoints for load balancers, monitoring and people: /healthz (the process answers),
// /readyz (Temporal answers), /runs/<workflowId> (a pipeline's `status` query), /metrics
// (Prometheus). Admin actions (retry, abort, approve) are deliberately not exposed over HTTP.
// /readyz is not a load-balancer check: while Temporal is down the webhook still accepts
// pushes into the spool, so taking the API out of rotation would lose deliveries.
import { isGrpcDeadlineError } from '@temporalio/client';
import { pipelineId } from '../common/ids';
import type { ApiMetrics } from './metrics';
import { json, type Reply } from './reply';
import type { Spool } from './spool';
import { isUnavailable, RunNotFoundError, TemporalTimeoutError, type TemporalGate } from './temporal-gate';

export interface StatusDeps {
  gate: TemporalGate;
  spool: Spool;
  metrics: ApiMetrics;
}

/** Every pipeline ID starts so (common/ids.ts); other workflows have no `status` for the outside. */
const PIPELINE_PREFIX = pipelineId('', '', '').replace(/\/+$/, '/');

export function createStatusRoutes(deps: StatusDeps) {
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
        if (err instanceof RunNotFoundError) return json(404, { error: err.message });
        // Temporal holds a query until a worker answers it: a timeout here is no outage.
        if (err instanceof TemporalTimeoutError || isGrpcDeadlineError(err)) {
          return json(504, { error: `${err.message}: is the orchestrator worker running?` });
        }
        if (isUnavailable(err)) return json(503, { error: 'Temporal is unreachable' });
        return json(502, { error: `status query failed: ${(err as Error).message}` });
      }
    },

    metrics(): Reply {
      deps.metrics.setSpoolDepth(deps.spool.depth());
      return { status: 200, body: deps.metrics.render(), text: { contentType: 'text/plain; version=0.0.4' } };
    },
  };
}
