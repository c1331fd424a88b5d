// Carries out a chat command that has passed the signature and access checks: reads go through
// the same status query and visibility query as `conveyor status|list`, actions through the SAME
// Temporal Updates as `conveyor approve|reject|retry|abort` (cli/commands/context.ts
// operatorUpdate), so the run itself accepts or refuses, with its reason, and records the chat
// user as `by`. Every answer is a sentence for the chat user; nothing here throws.
import type pino from 'pino';
import type { PipelineStatus } from '../../common/types';
import type { ConveyorConfig } from '../../config/conveyor';
import { operatorUpdate, stageLabel } from '../../cli/commands/context';
import { listQuery, listRuns, queryLiteral, type RunRow } from '../../cli/commands/list';
import { RepositoryKey } from '../../common/search-attributes';
import { abortUpdate, approveUpdate, rejectUpdate, retryUpdate } from '../../workflows/messages';
import type { TemporalGate } from '../temporal-gate';
import type { Command, Target } from './parse-command';
import { USAGE } from './parse-command';

export interface ChatAnswer {
  text: string;
  /** Shown to the channel (an action done) rather than to the sender only (reads, refusals). */
  inChannel: boolean;
}

export interface CommandContext {
  config: ConveyorConfig;
  gate: TemporalGate;
  logger: pino.Logger;
  /** Who sent it, as recorded on the run: `slack:U0123 (alice)`. */
  by: string;
  /** For `list` without a repository: what the sender may read. */
  readable: string[] | '*';
  /** Time limit of each Temporal call (an Update waits for the run's answer). */
  timeoutMs: number;
}

/** The status a run must be in for an action given as owner/repo/branch. */
const WAITS_FOR: Partial<Record<Command['action'], string>> = {
  approve: 'awaiting-approval',
  reject: 'awaiting-approval',
  retry: 'awaiting-operator',
};

export async function runCommand(ctx: CommandContext, cmd: Command): Promise<ChatAnswer> {
  try {
    return await run(ctx, cmd);
  } catch (err) {
    const message = (err as Error)?.message ?? String(err);
    ctx.logger.warn({ action: cmd.action, err: message }, 'chat command failed');
    return { text: `${cmd.action} not done: ${message}`, inChannel: false };
  }
}

async function run(ctx: CommandContext, cmd: Command): Promise<ChatAnswer> {
  const { config, gate, timeoutMs } = ctx;
  switch (cmd.action) {
    case 'help':
      return { text: USAGE, inChannel: false };
    case 'list':
      return { text: await list(ctx, cmd.repository, cmd.branch), inChannel: false };
    case 'status': {
      const id = await resolve(ctx, cmd.target);
      const s = await gate.status(id);
      return { text: describe(s), inChannel: false };
    }
    case 'approve':
    case 'reject':
    case 'retry':
    case 'abort': {
      const id = await resolve(ctx, cmd.target, cmd.action);
      // The CLI's words for a run that has ended (cli/commands/approve.ts, …).
      const ended = (s: PipelineStatus) =>
        cmd.action === 'abort'
          ? `${id} has already ended (${s.status}): nothing to abort`
          : cmd.action === 'retry'
            ? `nothing awaits an operator in ${id}: the run is ${s.status}`
            : `nothing awaits approval in ${id}: the run is ${s.status}`;
      const answer = await gate
        .run(`chat ${cmd.action}`, timeoutMs + 1000, (client) => {
          switch (cmd.action) {
            case 'approve':
              return operatorUpdate(
                client,
                config,
                id,
                approveUpdate,
                { by: ctx.by, ...(cmd.comment ? { comment: cmd.comment } : {}) },
                ended,
                timeoutMs,
              );
            case 'reject':
              return operatorUpdate(
                client,
                config,
                id,
                rejectUpdate,
                { by: ctx.by, reason: cmd.reason ?? 'rejected from chat' },
                ended,
                timeoutMs,
              );
            case 'retry':
              return operatorUpdate(
                client,
                config,
                id,
                retryUpdate,
                { by: ctx.by, ...(cmd.stage ? { stage: cmd.stage } : {}) },
                ended,
                timeoutMs,
              );
            case 'abort':
              return operatorUpdate(
                client,
                config,
                id,
                abortUpdate,
                { by: ctx.by, reason: cmd.reason ?? 'aborted from chat' },
                ended,
                timeoutMs,
              );
          }
        })
        .catch((err: unknown) => ({ refused: (err as Error)?.message ?? String(err) }));
      if ('refused' in answer) {
        ctx.logger.info(
          { action: cmd.action, workflowId: id, by: ctx.by, reason: answer.refused },
          'chat action refused',
        );
        return { text: `refused: ${answer.refused}`, inChannel: false };
      }
      ctx.logger.info({ action: cmd.action, workflowId: id, by: ctx.by }, 'chat action done');
      const past = { approve: 'approved', reject: 'rejected', retry: 'retrying', abort: 'aborted' }[cmd.action];
      const detail = cmd.action === 'retry' ? `: ${answer.detail}` : '';
      return { text: `${past} ${id}${detail} (by ${ctx.by})`, inChannel: true };
    }
  }
}

/** The run a target means: its ID, or the branch's latest run the action applies to. Visibility
 * lags the run by a moment (a run that just began to wait may not be listed as waiting yet), so an
 * action falls back to the branch's latest open run, whose own validator then accepts or says why not. */
async function resolve(ctx: CommandContext, target: Target, action?: Command['action']): Promise<string> {
  if (target.kind === 'run') return target.workflowId;
  const status = action ? WAITS_FOR[action] : undefined;
  const first = (query: string) =>
    ctx.gate.run('chat run lookup', ctx.timeoutMs, (c) => listRuns(c, query, 1, target.branch)).then((rows) => rows[0]);
  const base = { repository: target.repository, branch: target.branch };
  const open = `${listQuery(base)} AND ExecutionStatus = 'Running'`;
  const row = status
    ? ((await first(listQuery({ ...base, status }))) ?? (await first(open)))
    : await first(action ? open : listQuery(base));
  if (!row) throw new Error(`no ${action ? 'open ' : ''}run of ${target.repository} ${target.branch}`);
  return row.workflowId;
}

async function list(ctx: CommandContext, repository?: string, branch?: string): Promise<string> {
  let query = listQuery({ repository, branch });
  if (!repository && ctx.readable !== '*') {
    if (ctx.readable.length === 0) return 'refused: you may not read any repository';
    query += ` AND ${RepositoryKey.name} IN (${ctx.readable.map((r) => queryLiteral(r, 'repository')).join(', ')})`;
  }
  const rows = await ctx.gate.run('chat list', ctx.timeoutMs, (c) => listRuns(c, query, 10, branch));
  if (rows.length === 0) return `no runs of ${repository ?? 'your repositories'}${branch ? ` ${branch}` : ''}`;
  return rows.map(rowLine).join('\n');
}

function rowLine(r: RunRow): string {
  const build = r.build === null ? '' : ` build ${r.build}`;
  return `\`${r.workflowId}\` ${r.status}${r.stage ? ` (${r.stage})` : ''}${build}`;
}

function describe(s: PipelineStatus): string {
  const lines = [
    `\`${s.workflowId}\`: ${s.status}${s.stage ? `, stage ${s.stage}` : ''}${s.build !== undefined ? `, build ${s.build}` : ''}`,
  ];
  for (const st of s.stages) {
    if (st.state === 'failed') lines.push(`${stageLabel(st)} failed (attempt ${st.attempt}): ${st.error ?? ''}`);
  }
  if (s.failure) lines.push(s.failure);
  if (s.approval?.decision)
    lines.push(`approval: ${s.approval.decision}${s.approval.by ? ` by ${s.approval.by}` : ''}`);
  return lines.join('\n');
}
