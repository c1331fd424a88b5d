// Reading timings out of workflow histories: a stage child's wall time as its parent saw it
// (child initiated → child closed), the time its activities ran and the time inside its commands
// (StepResult.durationMs of the step activities).
import type { Client } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';

type Event = temporal.api.history.v1.IHistoryEvent;

export const eventMs = (e: Event) => {
  const t = e.eventTime;
  return t ? Number(t.seconds ?? 0) * 1000 + (t.nanos ?? 0) / 1e6 : NaN;
};

export async function historyOf(client: Client, workflowId: string): Promise<Event[]> {
  return (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
}

export interface ChildSpan {
  workflowId: string;
  startMs: number;
  endMs: number;
}

/** Direct children of a workflow, with start (initiated) and close times from the parent's history. */
export function childSpans(events: Event[]): ChildSpan[] {
  const byInitiated = new Map<number, ChildSpan>();
  for (const e of events) {
    const init = e.startChildWorkflowExecutionInitiatedEventAttributes;
    if (init?.workflowId)
      byInitiated.set(Number(e.eventId), { workflowId: init.workflowId, startMs: eventMs(e), endMs: NaN });
    const closed =
      e.childWorkflowExecutionCompletedEventAttributes ??
      e.childWorkflowExecutionFailedEventAttributes ??
      e.childWorkflowExecutionCanceledEventAttributes ??
      e.childWorkflowExecutionTimedOutEventAttributes ??
      e.childWorkflowExecutionTerminatedEventAttributes;
    if (closed) {
      const span = byInitiated.get(Number(closed.initiatedEventId));
      if (span) span.endMs = eventMs(e);
    }
  }
  return [...byInitiated.values()].filter((s) => Number.isFinite(s.endMs));
}

export interface ActivitySpan {
  type: string;
  startMs: number;
  endMs: number;
  /** StepResult.durationMs: the command itself. */
  commandMs?: number;
}

export function activitySpans(events: Event[]): ActivitySpan[] {
  const scheduled = new Map<number, string>();
  const started = new Map<number, number>();
  const out: ActivitySpan[] = [];
  for (const e of events) {
    const s = e.activityTaskScheduledEventAttributes;
    if (s) scheduled.set(Number(e.eventId), s.activityType?.name ?? '?');
    const st = e.activityTaskStartedEventAttributes;
    if (st) started.set(Number(st.scheduledEventId), eventMs(e));
    const c = e.activityTaskCompletedEventAttributes;
    if (c) {
      const id = Number(c.scheduledEventId);
      let commandMs: number | undefined;
      const data = c.result?.payloads?.[0]?.data;
      if (data) {
        try {
          const v = JSON.parse(Buffer.from(data).toString('utf8')) as { durationMs?: unknown };
          if (typeof v?.durationMs === 'number') commandMs = v.durationMs;
        } catch {
          /* not JSON */
        }
      }
      out.push({ type: scheduled.get(id) ?? '?', startMs: started.get(id) ?? NaN, endMs: eventMs(e), commandMs });
    }
  }
  return out;
}

/** Length of the union of intervals. */
export function unionMs(intervals: [number, number][]): number {
  const s = intervals.filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0]);
  let total = 0;
  let cur: [number, number] | undefined;
  for (const [a, b] of s) {
    if (!cur || a > cur[1]) {
      if (cur) total += cur[1] - cur[0];
      cur = [a, b];
    } else cur[1] = Math.max(cur[1], b);
  }
  if (cur) total += cur[1] - cur[0];
  return total;
}

export function countTasks(events: Event[]): { workflowTasks: number; activityTasks: number } {
  let workflowTasks = 0;
  let activityTasks = 0;
  for (const e of events) {
    if (e.workflowTaskCompletedEventAttributes) workflowTasks++;
    if (e.activityTaskStartedEventAttributes) activityTasks++;
  }
  return { workflowTasks, activityTasks };
}
