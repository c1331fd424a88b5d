// What every activity log line and activity metric carries beyond the SDK's own attributes
// (workflowId, workflowRunId, workflowType, activityType, activityId, taskQueue, attempt): the
// stage and distro of the stage child that scheduled it (from its workflow ID,
// common/ids.ts parseStageId; an input's own `stage`/`distro` wins), and the staging host an
// activity works on (`host.name` of fleet inputs). An interceptor rather than a child logger per
// activity: activities keep using `Context.current().log` and get the fields without passing a
// logger around, and the SDK's own lines ("Activity failed", heartbeat timeouts) get them too.
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import { parseStageId } from '../common/ids';

export interface ActivityLogFields {
  stage?: string;
  distro?: string;
  host?: string;
}

/** The fields of one activity, from its workflow's ID and its first argument (one input object). */
export function activityLogFields(workflowId: string | undefined, input: unknown): ActivityLogFields {
  const fromId = workflowId ? parseStageId(workflowId) : undefined;
  const arg = (input && typeof input === 'object' ? input : {}) as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === 'string' && v ? v : undefined);
  const host = arg.host as { name?: unknown } | string | undefined;
  const out: ActivityLogFields = {};
  const stage = str(arg.stage) ?? fromId?.stage;
  // A step's input names its distro only in the environment it hands the command.
  const stepEnv = (arg.env && typeof arg.env === 'object' ? arg.env : {}) as Record<string, unknown>;
  const distro = str(arg.distro) ?? fromId?.distro ?? str(stepEnv.CONVEYOR_DISTRO);
  const hostName = typeof host === 'string' ? host : str(host?.name);
  if (stage) out.stage = stage;
  if (distro) out.distro = distro;
  if (hostName) out.host = hostName;
  return out;
}

/** Low-cardinality tags only: a host name or workflow ID per series would explode them. */
function metricTags(f: ActivityLogFields): Record<string, string> {
  return { ...(f.stage ? { stage: f.stage } : {}), ...(f.distro ? { distro: f.distro } : {}) };
}

export const activityContextInterceptor: ActivityInterceptorsFactory = (ctx) => {
  // Known from the workflow ID at once (so lines logged before execute have them), completed by
  // the input when execute starts.
  let fields = activityLogFields(ctx.info.workflowExecution?.workflowId, undefined);
  return {
    inbound: {
      execute(input, next) {
        fields = activityLogFields(ctx.info.workflowExecution?.workflowId, input.args[0]);
        return next(input);
      },
    },
    outbound: {
      getLogAttributes(input, next) {
        return next({ ...input, ...fields });
      },
      getMetricTags(input, next) {
        return next({ ...input, ...metricTags(fields) });
      },
    },
  };
};
