// The audit trail's record (activities/audit/): one per operator action, whichever way it came
// (conveyor CLI, `temporal workflow signal|update`, Slack), with who, when, why and on what.
// Pure: the pipeline workflow builds entries, the orchestrator writes them, the CLI reads them.

export const AUDIT_ACTIONS = ['approve', 'reject', 'retry', 'abort', 'rerun', 'promote', 'rollback', 'remove'] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

export interface AuditEntry {
  /** ISO time the action was received (workflow time for pipeline actions). */
  at: string;
  /** As the sender says (`--by`, `$USER`, `slack:U0123 (alice)`); `unknown` when none was given. */
  by: string;
  action: AuditAction;
  /** What it acted on: a pipeline, a stage workflow, `repo <env>/<channel>[/<distro>]`. */
  target: string;
  /** The reason, comment or stage the sender gave. */
  why?: string;
  /** Whether it took effect: a signal the run could not act on is recorded as not accepted. */
  accepted: boolean;
  /** The workflow that acted on it (a rerun's or rollback's own ID), when not the target itself. */
  workflowId?: string;
  /** What it changed, as the acting workflow reports it (`retrying test`, `approved`, …). */
  detail?: string;
}

export interface RecordAuditInput {
  entry: AuditEntry;
  /** Unique per action and stable across retries: `[A-Za-z0-9_-]`, at most 64 characters. */
  id: string;
}

/** The object holding one entry: `<prefix>audit/<YYYY-MM-DD>/<at>-<id>.json`. The day prefix
 * lets a reader list only the days asked for; the time first keeps a day's keys in order; `id`
 * (unique per action, the same on a retried write) makes a second write of one action the same
 * object, never a second entry. */
export function auditKey(prefix: string, entry: Pick<AuditEntry, 'at'>, id: string): string {
  const day = entry.at.slice(0, 10);
  const safeAt = entry.at.replace(/[:.]/g, '-');
  return `${prefix}audit/${day}/${safeAt}-${id}.json`;
}

/** `7d`, `12h`, `30m` or an ISO date → the earliest time asked for. */
export function parseSince(since: string, now: Date = new Date()): Date {
  const m = /^(\d+)([dhm])$/.exec(since.trim());
  if (m) {
    const ms = { d: 86400e3, h: 3600e3, m: 60e3 }[m[2] as 'd' | 'h' | 'm'] * Number(m[1]);
    return new Date(now.getTime() - ms);
  }
  const t = Date.parse(since);
  if (Number.isNaN(t)) throw new Error(`--since: expected 7d, 12h, 30m or a date (2026-12-01), got ${since}`);
  return new Date(t);
}

/** The UTC days from `from` to `to`, inclusive, as `YYYY-MM-DD`. */
export function daysBetween(from: Date, to: Date): string[] {
  const days: string[] = [];
  const d = new Date(Date.UTC(from.getUTCFullYear(), from.getUTCMonth(), from.getUTCDate()));
  for (; d.getTime() <= to.getTime(); d.setUTCDate(d.getUTCDate() + 1)) days.push(d.toISOString().slice(0, 10));
  return days;
}
