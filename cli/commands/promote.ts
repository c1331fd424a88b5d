// `conveyor promote <pipelineId> [--force]`: promotes a finished run's build to production again,
// from the promote stage's input recorded in its history (the same artifacts, keys and SHA-256 —
// never rebuilt), as a new workflow `…/promote#rerun-<n>` linked to the run by its ID. Promoting
// an older build than the channel holds is refused unless --force; the same build changes nothing.
import { Command } from 'commander';
import { defaultPayloadConverter, WorkflowIdReusePolicy } from '@temporalio/common';
import type { Client } from '@temporalio/client';
import { stageId } from '../../common/ids';
import type { PromoteStageInput } from '../../workflows/stages/promote';
import { defaultOperator, recordAction } from './audit';
import { commandConfig, queryStatus, withClient } from './context';

/** The promote stage's input recorded for a pipeline run (any attempt of its promote child). */
export async function recordedPromoteInput(client: Client, pipelineId: string): Promise<PromoteStageInput> {
  for (let attempt = 1; attempt <= 20; attempt++) {
    const id = stageId(pipelineId, 'promote', undefined, attempt);
    let history;
    try {
      history = await client.workflow.getHandle(id).fetchHistory();
    } catch {
      continue;
    }
    const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
    if (payload) return defaultPayloadConverter.fromPayload<PromoteStageInput>(payload);
  }
  throw new Error(
    `${pipelineId} has no promote stage in its history: only a run that reached promote can be promoted again`,
  );
}

export function promoteCommand(): Command {
  return new Command('promote')
    .summary("promote a finished run's build to production again (the same artifacts)")
    .argument('<workflowId>', 'a pipeline run that reached its promote stage')
    .description(
      "publish a finished run's artifacts (same keys, SHA-256 checked) to the production channel again; " +
        'refused when the channel holds a newer build, unless --force',
    )
    .option('--force', 'promote even when the channel holds a newer build')
    .option('--reason <text>', 'why (recorded in the audit trail: conveyor audit)')
    .option('--by <name>', 'who promotes (recorded in the audit trail)', defaultOperator())
    .action(async (id: string, o: { force?: boolean; reason?: string; by: string }, cmd: Command) => {
      const config = commandConfig(cmd);
      await withClient(config, async (client) => {
        const status = await queryStatus(client, config, id);
        if (!status.endedAt) throw new Error(`${id} is still ${status.status}: promote it when it has ended`);
        const input = await recordedPromoteInput(client, id);
        const workflowId = `${stageId(id, 'promote')}#rerun-${Date.now()}`;
        const handle = await client.workflow.start('promoteStage', {
          workflowId,
          taskQueue: config.temporal.taskQueue,
          // An operator's promotion refuses an older build (unless --force) rather than skipping it.
          args: [{ ...input, force: o.force === true, skipIfOlder: false }],
          workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
          staticSummary: `promote ${input.repository.name} ${input.version} to production ${input.channel} again${o.force ? ' (forced)' : ''}`,
        });
        await recordAction(client, config, {
          action: 'promote',
          by: o.by,
          target: id,
          workflowId,
          ...(o.reason ? { why: o.reason } : {}),
          detail: `${input.version} to production ${input.channel}${o.force ? ' (forced)' : ''}`,
        });
        try {
          await handle.result();
        } catch (err) {
          const cause = (err as { cause?: { message?: string } }).cause;
          throw new Error(
            `promotion of ${input.version} refused or failed: ${cause?.message ?? (err as Error).message}`,
          );
        }
        console.log(
          `promoted ${input.repository.name} ${input.version} to production ${input.channel} (${workflowId})`,
        );
      });
    });
}
