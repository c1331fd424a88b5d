// `conveyor rerun <workflowId> <stage> [--force]`: re-runs one stage of a finished run (e.g.
// redeploy build 41 to staging) from the input recorded in its history, as a new workflow
// `<stage child id>#rerun-<time>` of the same type, linked to the run by its ID. --force lets a
// deploy go to an ancestor of the deployed commit and a promote put an older build in a channel.
import { Command } from 'commander';
import { defaultPayloadConverter } from '@temporalio/common';
import type { Client } from '@temporalio/client';
import { stageLabelToId } from './rerun-ids';
import { defaultOperator, recordAction } from './audit';
import { commandConfig, queryStatus, withClient } from './context';

export interface RecordedStage {
  workflowId: string;
  workflowType: string;
  input: Record<string, unknown>;
}

/** The newest attempt of a stage child of `pipelineId`, with its workflow type and recorded input. */
export async function recordedStage(client: Client, pipelineId: string, stage: string): Promise<RecordedStage> {
  let found: RecordedStage | undefined;
  for (let attempt = 1; attempt <= 20; attempt++) {
    const id = stageLabelToId(pipelineId, stage, attempt);
    let history;
    try {
      history = await client.workflow.getHandle(id).fetchHistory();
    } catch {
      if (attempt > 1) break;
      continue;
    }
    const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
    const payload = started?.input?.payloads?.[0];
    if (!started?.workflowType?.name || !payload) break;
    found = {
      workflowId: id,
      workflowType: started.workflowType.name,
      input: defaultPayloadConverter.fromPayload<Record<string, unknown>>(payload),
    };
  }
  if (!found)
    throw new Error(
      `${pipelineId} has no stage ${stage} in its history (stages: test, package/<distro>, package/docs, publish, deploy/<distro>, verify, release, promote)`,
    );
  return found;
}

export function rerunCommand(): Command {
  return new Command('rerun')
    .summary('re-run one stage of a finished run from the inputs recorded in its history')
    .argument('<workflowId>', 'a pipeline run that has ended')
    .argument('<stage>', 'test, package/<distro>, package/docs, publish, deploy/<distro>, verify, release or promote')
    .option('--force', 'deploy: even an ancestor of the deployed commit; promote: even an older build')
    .option('--reason <text>', 'why (recorded in the audit trail: conveyor audit)')
    .option('--by <name>', 'who reruns (recorded in the audit trail)', defaultOperator())
    .action(async (id: string, stage: string, o: { force?: boolean; reason?: string; by: string }, cmd: Command) => {
      const config = commandConfig(cmd);
      await withClient(config, async (client) => {
        const status = await queryStatus(client, config, id);
        if (!status.endedAt)
          throw new Error(`${id} is still ${status.status}: use conveyor retry for a run that waits`);
        const recorded = await recordedStage(client, id, stage);
        const workflowId = `${recorded.workflowId.replace(/#\d+$/, '')}#rerun-${Date.now()}`;
        const handle = await client.workflow.start(recorded.workflowType, {
          workflowId,
          taskQueue: config.temporal.taskQueue,
          // An operator's rerun refuses (promote: an older build) rather than skipping, unless --force.
          args: [
            {
              ...recorded.input,
              ...(o.force ? { force: true } : {}),
              ...(recorded.workflowType === 'promoteStage' ? { skipIfOlder: false } : {}),
            },
          ],
          staticSummary: `rerun of ${stage} of ${id}${o.force ? ' (forced)' : ''}`,
        });
        await recordAction(client, config, {
          action: 'rerun',
          by: o.by,
          target: id,
          workflowId,
          ...(o.reason ? { why: o.reason } : {}),
          detail: `${stage}${o.force ? ' (forced)' : ''}`,
        });
        console.error(`started ${workflowId} (${recorded.workflowType}); waiting for it to end`);
        try {
          const result = (await handle.result()) as { status?: string; reason?: string } | undefined;
          if (result?.status === 'superseded') {
            throw new Error(
              `rerun of ${stage} skipped: ${result.reason ?? 'superseded'} (use --force to deploy it anyway)`,
            );
          }
        } catch (err) {
          const cause = (err as { cause?: { message?: string } }).cause;
          throw new Error(`rerun of ${stage} failed: ${cause?.message ?? (err as Error).message}`);
        }
        console.log(workflowId);
      });
    });
}
