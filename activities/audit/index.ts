// The audit trail: every operator action (approve, reject, retry, abort on a run; rerun, promote,
// repo rollback and remove) as one JSON object in S3, `<prefix>audit/<YYYY-MM-DD>/<time>-<id>.json`
// (common/audit.ts), written by this activity on the orchestrator and read by `conveyor audit`.
//
// Why S3 objects and not the runs' own histories or an entity workflow: a run's history (and its
// `actions` in the status) is deleted with the run when the namespace's retention passes (30 days
// by default); an audit entity workflow would keep entries only as long as it carries them in its
// state across continue-as-new, so its state grows with the trail or forgets it. Objects in a
// bucket stay until the bucket's own lifecycle rule says otherwise, are readable without
// Temporal, and can be made tamper-evident with S3 versioning or Object Lock. One object per
// action, not a JSON-lines object per day: S3 cannot append, and a read-modify-write per day
// would race between two orchestrators (a lost update is a lost entry); a write-once object per
// action needs no lock, and the day prefix keeps `--since` to a few listings.
//
// A retried attempt writes the same key with the same bytes (the id comes from the caller: the
// pipeline's workflow, run and action number, or the acting workflow's ID), so the trail never
// shows one action twice.
import type { S3Client } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import { AUDIT_ACTIONS, auditKey, daysBetween, type AuditEntry, type RecordAuditInput } from '../../common/audit';
import { parseS3Url, type ConveyorConfig } from '../../config/conveyor';
import { FailureType } from '../../common/failures';
import { getBytes, listAll, mapLimit, putObject } from '../repository/s3-objects';

export interface AuditTarget {
  bucket: string;
  /** '' or ending with '/'. */
  prefix: string;
}

const FIELD_LIMIT = 4096;

function refuse(message: string): never {
  throw ApplicationFailure.create({ type: FailureType.BadInput, message, nonRetryable: true });
}

/** Bounded, well-formed entries only: the trail is read by people and tools. */
export function checkEntry(entry: AuditEntry, id: string): AuditEntry {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) refuse(`audit: bad id ${JSON.stringify(id)}`);
  if (!(AUDIT_ACTIONS as readonly string[]).includes(entry.action))
    refuse(`audit: unknown action ${JSON.stringify(entry.action)}`);
  if (Number.isNaN(Date.parse(entry.at))) refuse(`audit: bad time ${JSON.stringify(entry.at)}`);
  const cut = (v: string | undefined) => (v === undefined ? undefined : v.slice(0, FIELD_LIMIT));
  return {
    at: new Date(entry.at).toISOString(),
    by: cut(entry.by) || 'unknown',
    action: entry.action,
    target: cut(entry.target) ?? '',
    ...(entry.why ? { why: cut(entry.why) } : {}),
    accepted: entry.accepted === true,
    ...(entry.workflowId ? { workflowId: cut(entry.workflowId) } : {}),
    ...(entry.detail ? { detail: cut(entry.detail) } : {}),
  };
}

/** Where this config keeps the trail: `storage.audit`, else the artifacts bucket and prefix. */
export function auditTarget(config: Pick<ConveyorConfig, 'storage'>): AuditTarget {
  return parseS3Url(config.storage.audit ?? config.storage.artifacts);
}

export function createAuditActivities(deps: { s3: S3Client; target: AuditTarget }) {
  return {
    /** Appends one operator action to the audit trail (the same id twice: one entry). */
    async recordAudit(input: RecordAuditInput): Promise<{ key: string }> {
      const entry = checkEntry(input.entry, input.id);
      const key = auditKey(deps.target.prefix, entry, input.id);
      await putObject(deps.s3, deps.target.bucket, key, Buffer.from(JSON.stringify(entry) + '\n'), {
        contentType: 'application/json',
        immutable: true,
      });
      return { key };
    },
  };
}

/** The entries from `since` to `until` (default now), oldest first. */
export async function readAudit(
  s3: S3Client,
  target: AuditTarget,
  since: Date,
  until: Date = new Date(),
): Promise<AuditEntry[]> {
  const keys: string[] = [];
  for (const day of daysBetween(since, until)) {
    keys.push(...(await listAll(s3, target.bucket, `${target.prefix}audit/${day}/`)).keys());
  }
  const entries = await mapLimit(keys, 16, async (key) => {
    const body = await getBytes(s3, target.bucket, key);
    try {
      return body ? (JSON.parse(body.toString('utf8')) as AuditEntry) : undefined;
    } catch {
      return undefined; // not ours: skipped rather than failing the whole listing
    }
  });
  return entries
    .filter(
      (e): e is AuditEntry =>
        e !== undefined && Date.parse(e.at) >= since.getTime() && Date.parse(e.at) <= until.getTime(),
    )
    .sort((a, b) => a.at.localeCompare(b.at));
}
