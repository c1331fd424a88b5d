// What the Temporal server itself knows about a run, without any worker: a query needs the
// orchestrator worker to answer, describe() does not. When no worker answers (all killed, a
// deploy in progress, a queue nobody polls), `GET /runs/<id>` and `conveyor status` still show the
// run's status, its search attributes (stage, build, status as the workflow last upserted them),
// its memo (commit message, author, delivery) and every pending activity with its attempt and
// last failure — of the pipeline and of its running stage children, where a pipeline's real work
// happens. `runSummary` is pure (describe results in, JSON out); `describeRun` does the calls.
import type { Client, WorkflowExecutionDescription } from '@temporalio/client';
import { optionalTsToDate } from '@temporalio/common/lib/time';

export interface FailureSummary {
  message: string;
  /** The ApplicationFailure type (e.g. CommandFailed) or the kind of failure (timeout, cancelled). */
  type?: string;
  cause?: string;
}

export interface PendingActivitySummary {
  /** The workflow that scheduled it: the pipeline or one of its stage children. */
  workflowId: string;
  activityId: string;
  activityType: string;
  state: string;
  attempt: number;
  /** 0 means unlimited. */
  maximumAttempts: number;
  scheduledTime?: string;
  lastStartedTime?: string;
  lastHeartbeatTime?: string;
  nextAttemptScheduleTime?: string;
  lastWorkerIdentity?: string;
  lastFailure?: FailureSummary;
}

export interface RunSummary {
  workflowId: string;
  runId: string;
  type: string;
  taskQueue: string;
  /** The server's execution status: RUNNING, COMPLETED, FAILED, TERMINATED, … */
  status: string;
  startTime: string;
  closeTime?: string;
  historyLength: number;
  /** Search attributes by name (ConveyorStatus, ConveyorStage, ConveyorBuild, …). */
  searchAttributes: Record<string, unknown>;
  memo: Record<string, unknown>;
  pendingActivities: PendingActivitySummary[];
  /** Child workflows still running (stage children), by ID and type. */
  pendingChildren: { workflowId: string; type: string }[];
}

/** The subset of a describe() result the summary reads; tests can build it by hand. */
export type DescribeResult = Pick<
  WorkflowExecutionDescription,
  'workflowId' | 'runId' | 'type' | 'taskQueue' | 'status' | 'startTime' | 'closeTime' | 'historyLength' | 'memo'
> & {
  typedSearchAttributes: Pick<WorkflowExecutionDescription['typedSearchAttributes'], 'getAll'>;
  raw: {
    pendingActivities?: RawPendingActivity[] | null;
    pendingChildren?: { workflowId?: string | null; workflowTypeName?: string | null }[] | null;
  };
};

type RawPendingActivity = NonNullable<WorkflowExecutionDescription['raw']['pendingActivities']>[number];
type RawFailure = NonNullable<RawPendingActivity['lastFailure']>;

// temporal.api.enums.v1.PendingActivityState, by number (the proto enum is not a dependency here).
const ACTIVITY_STATES: Record<number, string> = {
  1: 'SCHEDULED',
  2: 'STARTED',
  3: 'CANCEL_REQUESTED',
  4: 'PAUSED',
  5: 'PAUSE_REQUESTED',
};

const iso = (d: Date | undefined) => (d ? d.toISOString() : undefined);

function failureSummary(f: RawFailure | null | undefined): FailureSummary | undefined {
  if (!f) return undefined;
  const type =
    f.applicationFailureInfo?.type ??
    (f.timeoutFailureInfo ? 'timeout' : f.canceledFailureInfo ? 'cancelled' : undefined) ??
    undefined;
  return {
    message: f.message ?? '',
    ...(type ? { type } : {}),
    ...(f.cause?.message ? { cause: f.cause.message } : {}),
  };
}

function activitySummary(workflowId: string, a: RawPendingActivity): PendingActivitySummary {
  const out: PendingActivitySummary = {
    workflowId,
    activityId: a.activityId ?? '',
    activityType: a.activityType?.name ?? '',
    state: ACTIVITY_STATES[a.state ?? 0] ?? String(a.state ?? 'UNSPECIFIED'),
    attempt: a.attempt ?? 0,
    maximumAttempts: a.maximumAttempts ?? 0,
    scheduledTime: iso(optionalTsToDate(a.scheduledTime)),
    lastStartedTime: iso(optionalTsToDate(a.lastStartedTime)),
    lastHeartbeatTime: iso(optionalTsToDate(a.lastHeartbeatTime)),
    nextAttemptScheduleTime: iso(optionalTsToDate(a.nextAttemptScheduleTime)),
    lastWorkerIdentity: a.lastWorkerIdentity || undefined,
    lastFailure: failureSummary(a.lastFailure),
  };
  return JSON.parse(JSON.stringify(out)) as PendingActivitySummary; // drop the undefined keys
}

/** One summary of a run and (optionally) its described children's pending activities. */
export function runSummary(run: DescribeResult, children: DescribeResult[] = []): RunSummary {
  const searchAttributes: Record<string, unknown> = {};
  for (const pair of run.typedSearchAttributes.getAll()) {
    const v = pair.value as unknown;
    searchAttributes[pair.key.name] = v instanceof Date ? v.toISOString() : v;
  }
  const pendingActivities = [run, ...children].flatMap((d) =>
    (d.raw.pendingActivities ?? []).map((a) => activitySummary(d.workflowId, a)),
  );
  return {
    workflowId: run.workflowId,
    runId: run.runId,
    type: run.type,
    taskQueue: run.taskQueue,
    status: run.status.name,
    startTime: run.startTime.toISOString(),
    ...(run.closeTime ? { closeTime: run.closeTime.toISOString() } : {}),
    historyLength: run.historyLength,
    searchAttributes,
    memo: run.memo ?? {},
    pendingActivities,
    pendingChildren: (run.raw.pendingChildren ?? []).map((c) => ({
      workflowId: c.workflowId ?? '',
      type: c.workflowTypeName ?? '',
    })),
  };
}

/** At most this many running children are described: a pipeline runs one per stage and distro. */
const MAX_CHILDREN = 16;

/** describe() of the run and of its running children; errors of the run's own describe propagate
 * (WorkflowNotFoundError, an unreachable server), a child that ended meanwhile is left out. */
export async function describeRun(client: Client, workflowId: string): Promise<RunSummary> {
  const run = await client.workflow.getHandle(workflowId).describe();
  const ids = (run.raw.pendingChildren ?? [])
    .map((c) => c.workflowId)
    .filter((id): id is string => !!id)
    .slice(0, MAX_CHILDREN);
  const children = await Promise.all(
    ids.map((id) =>
      client.workflow
        .getHandle(id)
        .describe()
        .catch(() => undefined),
    ),
  );
  return runSummary(
    run,
    children.filter((c): c is WorkflowExecutionDescription => c !== undefined),
  );
}
