// Conveyor's own series from workflow code, through the SDK's workflow metric meter: workflow code
// may do no I/O, and the meter hands each value to the worker's runtime (a sink), which exports it
// on the worker's Prometheus endpoint beside the SDK's series (workers/runtime.ts installRuntime).
// Emitting a metric adds no command to the history, so no patch is needed, and the SDK drops
// emissions while a history is replayed: a run counted once is not counted again when a worker
// rebuilds it from its history. The SDK's own series are named `temporal_…`; ours keep their names,
// and counters get `_total` (see docs/grafana-dashboard.json for the names as Prometheus sees them).
//
// Labels stay low-cardinality (repository, stage, distro, outcome, lock kind): never a workflow ID,
// commit or host name. The SDK adds namespace, taskQueue and workflowType.
import { metricMeter } from '@temporalio/workflow';

// Created at each emission, not at module load: the meter asserts a workflow context, which the
// bundle's module initialisation does not have (the objects are cheap; the runtime keys series by name).
const runs = () =>
  metricMeter.createCounter('conveyor_runs', undefined, 'Pipeline runs that ended, by repository and outcome.');
const stageDuration = () =>
  metricMeter.createHistogram(
    'conveyor_stage_duration_seconds',
    'float',
    undefined,
    'Duration of each stage attempt, by stage, distro and outcome (workflow time).',
  );
const lockWait = () =>
  metricMeter.createHistogram(
    'conveyor_lock_wait_seconds',
    'float',
    undefined,
    'Time a stage waited for a lock (publish channel or deploy fleet) before it was granted or gave up.',
  );
const operatorActions = () =>
  metricMeter.createCounter(
    'conveyor_operator_actions',
    undefined,
    'Operator actions a run received, by action and whether it acted on them.',
  );

export function countRun(repository: string, outcome: string): void {
  runs().add(1, { repository, outcome });
}

export function observeStage(stage: string, distro: string | undefined, outcome: string, seconds: number): void {
  if (!Number.isFinite(seconds) || seconds < 0) return;
  stageDuration().record(seconds, { stage, distro: distro ?? '', outcome });
}

/** `repo-lock/…` → `repo`, `deploy-lock/…` → `deploy`. */
export function observeLockWait(lockId: string, outcome: 'granted' | 'timeout', seconds: number): void {
  if (!Number.isFinite(seconds) || seconds < 0) return;
  lockWait().record(seconds, { lock: lockId.split('-lock/')[0] ?? 'other', outcome });
}

export function countOperatorAction(action: string, accepted: boolean): void {
  operatorActions().add(1, { action, accepted: String(accepted) });
}
