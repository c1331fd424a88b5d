// `conveyor status <workflowId>`: the pipeline's `status` query, one line per stage, then what an
// operator needs when something failed (error, log tail, log keys, the next command).
import { Command } from 'commander';
import type { PipelineStatus } from '../../common/types';
import { renderStatus } from '../follow';
import { describeRun, type RunSummary } from '../../api/run-summary';
import { commandConfig, NoAnswerError, queryStatus, stageLabel, withClient } from './context';

const TAIL_LINES = 12;

export function statusCommand(): Command {
  return new Command('status')
    .summary("a run's stages, failures and log tails")
    .argument('<workflowId>', 'a pipeline run, e.g. pipeline/acme/widget/main/<sha> (see conveyor list)')
    .description(
      "print a run's status: each stage with state, attempt, times; failures with their log tail; what a stage waits for " +
        '(a lock and its holder); warnings; operator actions and who sent them. When no orchestrator worker answers, ' +
        'says so and prints what the Temporal server knows (status, search attributes, pending activities, memo); exits 1',
    )
    .option('--json', 'print the status query result as JSON')
    .action(async (id: string, o: { json?: boolean }, cmd: Command) => {
      const config = commandConfig(cmd);
      await withClient(config, async (client) => {
        let status: PipelineStatus;
        try {
          status = await queryStatus(client, config, id);
        } catch (err) {
          if (!(err instanceof NoAnswerError)) throw err;
          // The query needs a worker; describe() does not: show what the server itself knows.
          const server = await describeRun(client, id);
          if (o.json) console.log(JSON.stringify({ noAnswer: err.message, server }, null, 2));
          else console.log([`conveyor: ${err.message}`, ...serverView(server)].join('\n'));
          process.exitCode = 1;
          return;
        }
        console.log(
          o.json ? JSON.stringify(status, null, 2) : [...renderStatus(status), ...statusDetails(status)].join('\n'),
        );
      });
    });
}

/** Lines under the stage table: build, failures with their tails and logs, and what to do next. */
export function statusDetails(s: PipelineStatus): string[] {
  const lines: string[] = [];
  if (s.sandbox === 'none') {
    lines.push(
      "  sandbox: NONE, repository steps ran unsandboxed as the build worker's user (conveyor.yml sandbox.mode: none)",
    );
  } else if (s.sandbox) lines.push(`  sandbox: ${s.sandbox}`);
  if (s.build !== undefined) lines.push(`  build ${s.build}${s.version ? `, version ${s.version}` : ''}`);
  // Retention dropped these at once (older than the builds kept): the stage succeeded without them.
  for (const r of s.published?.repositories ?? []) {
    for (const d of r.dropped ?? []) {
      lines.push(`  ${s.published!.environment} ${s.published!.channel} (${r.distro}): not published: ${d}`);
    }
  }
  for (const st of s.stages.filter((x) => x.note && x.state === 'running')) {
    lines.push(`  ${stageLabel(st)}: ${st.note}`);
  }
  for (const st of s.stages.filter((x) => x.state === 'failed')) {
    lines.push(
      `  ${stageLabel(st)} failed (attempt ${st.attempt}, ${st.workflowId}): ${st.error ?? 'no error recorded'}`,
    );
    const tail = (st.tail ?? '').trimEnd().split('\n').filter(Boolean).slice(-TAIL_LINES);
    for (const l of tail) lines.push(`    | ${l}`);
    for (const k of st.logKeys) lines.push(`    log: ${k}`);
  }
  if (s.approval) {
    const a = s.approval;
    lines.push(
      a.decision
        ? `  approval: ${a.decision}${a.by ? ` by ${a.by}` : ''}${a.comment ? `: ${a.comment}` : ''}`
        : `  approval requested at ${a.requestedAt}`,
    );
  }
  for (const w of s.warnings ?? []) lines.push(`  warning: ${w}`);
  for (const a of s.actions ?? []) {
    lines.push(
      `  ${a.at} ${a.action} by ${a.by}${a.detail ? ` (${a.detail})` : ''}${a.accepted ? '' : ': ignored, nothing waited for it'}`,
    );
  }
  if (s.failure) lines.push(`  ${s.failure}`);
  if (s.status === 'awaiting-approval') {
    lines.push(
      `  waiting for approval: conveyor approve ${s.workflowId}  |  conveyor reject ${s.workflowId} --reason <text>`,
    );
  }
  if (s.status === 'awaiting-operator') {
    lines.push(
      `  waiting for an operator: conveyor retry ${s.workflowId} [--stage <stage>]  |  ` +
        `conveyor abort ${s.workflowId} --reason <text>`,
    );
  }
  return lines;
}

/** The server's view of a run no worker answers for: status, search attributes, pending work, memo. */
export function serverView(r: RunSummary): string[] {
  const lines = [`${r.workflowId}  ${r.status} (as the Temporal server has it; started ${r.startTime})`];
  for (const [k, v] of Object.entries(r.searchAttributes)) lines.push(`  ${k}: ${JSON.stringify(v)}`);
  for (const c of r.pendingChildren) lines.push(`  running child: ${c.workflowId} (${c.type})`);
  for (const a of r.pendingActivities) {
    lines.push(
      `  pending activity ${a.activityType} in ${a.workflowId}: ${a.state}, attempt ${a.attempt}` +
        (a.lastWorkerIdentity ? `, last worker ${a.lastWorkerIdentity}` : ''),
    );
    if (a.lastFailure) lines.push(`    last failure: ${a.lastFailure.message}`);
  }
  for (const [k, v] of Object.entries(r.memo))
    lines.push(`  memo ${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return lines;
}
