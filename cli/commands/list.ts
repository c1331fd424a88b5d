// `conveyor list`: a visibility query over the pipelines' typed search attributes (the ones the
// Web UI filters on), one row per top-level run. Stage children are other workflow types, so
// `WorkflowType = 'pipeline'` keeps them out.
import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import { Command } from 'commander';
import type { RunStatus } from '../../common/types';
import { BranchKey, BuildKey, RepositoryKey, StageKey, StatusKey } from '../../common/search-attributes';
import { commandConfig, withClient } from './context';

/** RunStatus, plus `queued`: what a run shows between its start and its first workflow task. */
export const RUN_STATUSES = [
  'queued',
  'running',
  'awaiting-operator',
  'awaiting-approval',
  'succeeded',
  'failed',
  'aborted',
  'rejected',
  'expired',
  'superseded',
] as const satisfies readonly (RunStatus | 'queued')[];
// Fails to compile when RunStatus gains a status this list lacks.
const everyStatus: [Exclude<RunStatus, (typeof RUN_STATUSES)[number]>] extends [never] ? true : never = true;
void everyStatus;

const OPEN_STATUSES = ['queued', 'running', 'awaiting-operator', 'awaiting-approval'];

export interface ListFilter {
  repository?: string;
  branch?: string;
  status?: string;
}

/**
 * A string literal of Temporal's visibility query language. Quotes are escaped; a backslash (which
 * no git ref and no GitHub repository name can contain) and control characters are refused rather
 * than guessed at.
 */
export function queryLiteral(value: string, what: string): string {
  if (/[\\\p{Cc}]/u.test(value)) throw new Error(`${what}: a backslash or control character cannot be in ${value}`);
  return `'${value.replace(/'/g, "\\'")}'`;
}

/**
 * The branch's clause. Temporal's SQL visibility escapes a `"` in a literal as `\"`, which
 * PostgreSQL's standard strings keep as two characters: there `= 'say-"hi"'` matches nothing (the
 * dev server's SQLite store matched it). So a branch holding `"` is selected by what precedes its
 * first `"` (no clause when that is empty), and listRuns keeps the runs of exactly that branch.
 */
function branchClause(branch: string): string | undefined {
  const literal = queryLiteral(branch, '--branch');
  const quote = branch.indexOf('"');
  if (quote < 0) return `${BranchKey.name} = ${literal}`;
  if (quote === 0) return undefined;
  return `${BranchKey.name} STARTS_WITH ${queryLiteral(branch.slice(0, quote), '--branch')}`;
}

export function listQuery(f: ListFilter): string {
  const parts = [`WorkflowType = 'pipeline'`];
  if (f.repository) parts.push(`${RepositoryKey.name} = ${queryLiteral(f.repository, '--repo')}`);
  const branch = f.branch ? branchClause(f.branch) : undefined;
  if (branch) parts.push(branch);
  if (f.status) parts.push(`${StatusKey.name} = ${queryLiteral(f.status, '--status')}`);
  // A run terminated from outside never wrote its last status: an open status needs an open run.
  if (f.status && OPEN_STATUSES.includes(f.status)) parts.push(`ExecutionStatus = 'Running'`);
  return parts.join(' AND ');
}

export interface RunRow {
  workflowId: string;
  status: string;
  stage: string;
  build: number | null;
  startTime: string;
  closeTime: string | null;
}

export function listCommand(): Command {
  return new Command('list')
    .summary('list pipeline runs by repository, branch, status')
    .description(
      'list pipeline runs (running ones first, then the most recently closed) with their status, stage and build',
    )
    .option('--repo <owner/name>', 'only this repository (ConveyorRepository)')
    .option('--branch <branch>', 'only this branch (ConveyorBranch)')
    .option('--status <status>', `only runs in this status (ConveyorStatus): ${RUN_STATUSES.join(', ')}`)
    .option('--limit <n>', 'at most this many runs', '20')
    .option('--json', 'print the rows as JSON')
    .option('--show-query', 'print the visibility query (for the Web UI or `temporal workflow list --query`)')
    .action(
      async (
        o: { repo?: string; branch?: string; status?: string; limit: string; json?: boolean; showQuery?: boolean },
        cmd: Command,
      ) => {
        const limit = Number(o.limit);
        if (!Number.isInteger(limit) || limit < 1) throw new Error(`--limit: not a positive whole number: ${o.limit}`);
        if (o.status && !(RUN_STATUSES as readonly string[]).includes(o.status)) {
          throw new Error(`--status: unknown status ${o.status} (one of ${RUN_STATUSES.join(', ')})`);
        }
        const query = listQuery({ repository: o.repo, branch: o.branch, status: o.status });
        const config = commandConfig(cmd);
        const rows = await withClient(config, (client) => listRuns(client, query, limit, o.branch));
        if (o.showQuery) console.log(`query: ${query}`);
        if (o.json) console.log(JSON.stringify(rows, null, 2));
        else if (rows.length === 0) console.log(`no pipeline runs match ${query}`);
        else console.log(renderTable(rows).join('\n'));
      },
    );
}

/** The runs the query selects, at most `limit`; with `branch`, only that branch's (see branchClause). */
export async function listRuns(client: Client, query: string, limit: number, branch?: string): Promise<RunRow[]> {
  const rows: RunRow[] = [];
  try {
    for await (const w of client.workflow.list({ query, pageSize: Math.min(limit, 1000) })) {
      if (branch !== undefined && w.typedSearchAttributes.get(BranchKey) !== branch) continue;
      rows.push(rowOf(w));
      if (rows.length >= limit) break;
    }
  } catch (err) {
    const msg = (err as Error).message;
    const hint = /search attribute/i.test(msg)
      ? " (is the server missing Conveyor's search attributes? `temporal operator search-attribute create`, see README)"
      : '';
    throw new Error(`the visibility query failed (${query}): ${msg}${hint}`);
  }
  return rows;
}

/** Temporal's own status wins when the run was closed from outside (terminated, timed out) and never said so. */
function rowOf(w: WorkflowExecutionInfo): RunRow {
  const sa = w.typedSearchAttributes;
  const conveyor = sa.get(StatusKey);
  const external = ['TERMINATED', 'TIMED_OUT', 'CANCELLED'].includes(w.status.name);
  return {
    workflowId: w.workflowId,
    status: external || !conveyor ? w.status.name.toLowerCase() : conveyor,
    stage: sa.get(StageKey) ?? '',
    build: sa.get(BuildKey) ?? null,
    startTime: w.startTime.toISOString(),
    closeTime: w.closeTime ? w.closeTime.toISOString() : null,
  };
}

export function renderTable(rows: RunRow[]): string[] {
  const cells = rows.map((r) => [
    r.workflowId,
    r.status,
    r.stage || '-',
    r.build === null ? '-' : String(r.build),
    r.startTime.replace('T', ' ').replace(/\.\d+Z$/, 'Z'),
  ]);
  const head = ['WORKFLOW ID', 'STATUS', 'STAGE', 'BUILD', 'STARTED (UTC)'];
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) =>
    c
      .map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(head), ...cells.map(line)];
}
