// `conveyor audit [--since 7d] [--json]`: the audit trail of operator actions (activities/audit/),
// read from the bucket, so it outlives the runs' histories. Also the helper the commands that
// start workflows of their own (rerun, promote, repo rollback and remove) use to record
// themselves: approve, reject, retry and abort are recorded by the run that receives them.
import crypto from 'node:crypto';
import { Command } from 'commander';
import type { Client } from '@temporalio/client';
import { auditTarget, readAudit } from '../../activities/audit';
import { createAwsClients } from '../../activities/storage/s3';
import { parseSince, type AuditEntry } from '../../common/audit';
import type { ConveyorConfig } from '../../config/conveyor';
import type { auditRecord } from '../../workflows/audit-record';
import { commandConfig } from './context';

/** Who the operator is when they do not say: `$USER`, as `conveyor approve --by` defaults. */
export function defaultOperator(): string {
  return process.env.USER ?? 'operator';
}

/**
 * Writes the audit entry of an action that started `workflowId`, through the orchestrator (the
 * `auditRecord` workflow, `audit/<id>`): the action is in the trail before the command waits for
 * the workflow's result. The id derives from the acting workflow's ID, so a second call is the
 * same entry.
 */
export async function recordAction(
  client: Client,
  config: ConveyorConfig,
  entry: Omit<AuditEntry, 'at' | 'accepted'>,
): Promise<void> {
  const id = crypto
    .createHash('sha256')
    .update(`${entry.action}\n${entry.workflowId ?? entry.target}`)
    .digest('hex')
    .slice(0, 32);
  try {
    await client.workflow.execute<typeof auditRecord>('auditRecord', {
      workflowId: `audit/${id}`,
      taskQueue: config.temporal.taskQueue,
      args: [{ id, entry: { ...entry, at: new Date().toISOString(), accepted: true } }],
    });
  } catch (err) {
    throw new Error(
      `${entry.action} started ${entry.workflowId ?? entry.target}, but its audit entry was not written: ${(err as Error).message}`,
    );
  }
}

function line(e: AuditEntry): string {
  const what = e.workflowId && e.workflowId !== e.target ? `${e.target} (${e.workflowId})` : e.target;
  const ignored = e.accepted ? '' : ' (ignored)';
  const why = e.why ? `: ${e.why}` : '';
  const detail = e.detail ? ` [${e.detail}]` : '';
  return `${e.at} ${e.action.padEnd(8)}${ignored} by ${e.by} on ${what}${why}${detail}`;
}

export function auditCommand(): Command {
  return new Command('audit')
    .summary(
      'operator actions (approve, reject, retry, abort, rerun, promote, rollback, remove): who, when, why, on what',
    )
    .description(
      'the audit trail of operator actions, oldest first: one JSON object per action in the bucket of ' +
        'storage.audit (default the artifacts bucket), under audit/<day>/, written by the orchestrator. It is ' +
        "kept outside the runs' histories, so it outlives Temporal's retention; actions sent as signals that the " +
        'run could not act on are listed as (ignored).',
    )
    .option('--since <when>', 'how far back: 7d, 12h, 30m or a date (2026-12-01)', '7d')
    .option('--json', 'one JSON object per line')
    .action(async (o: { since: string; json?: boolean }, cmd: Command) => {
      const config = commandConfig(cmd);
      const since = parseSince(o.since);
      const { s3 } = createAwsClients(config);
      const entries = await readAudit(s3, auditTarget(config), since);
      if (o.json) {
        for (const e of entries) process.stdout.write(JSON.stringify(e) + '\n');
        return;
      }
      if (entries.length === 0) {
        process.stdout.write(`no operator actions since ${since.toISOString()}\n`);
        return;
      }
      for (const e of entries) process.stdout.write(line(e) + '\n');
    });
}
