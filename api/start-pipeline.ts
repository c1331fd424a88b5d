// Starting a pipeline is idempotent by workflow ID: a second delivery of the same push (or a
// redelivery) meets WorkflowExecutionAlreadyStarted and answers with the existing run.
import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import { pipelineId } from '../common/ids';
import { ORCHESTRATOR_QUEUE } from '../common/queues';
import { BranchKey, CommitKey, RepositoryKey, StatusKey } from '../common/search-attributes';
import type { PipelineInput } from '../common/types';
import type { pipeline } from '../workflows/pipeline';

export interface StartOutcome {
  workflowId: string;
  started: boolean;
}

export async function startPipeline(
  client: Client,
  input: PipelineInput,
  taskQueue: string = ORCHESTRATOR_QUEUE,
): Promise<StartOutcome> {
  const workflowId = pipelineId(input.repository.name, input.branch, input.sha);
  try {
    await client.workflow.start<typeof pipeline>('pipeline', {
      workflowId,
      taskQueue,
      args: [input],
      // A finished run of the same push is not started again: rerun is an operator's decision.
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      memo: {
        commitMessage: input.commit.message,
        author: input.commit.author,
        compareUrl: input.commit.compareUrl,
        deliveryId: input.deliveryId ?? '',
      },
      staticSummary: `${input.repository.name} ${input.branch} @ ${input.sha.slice(0, 12)}: ${firstLine(input.commit.message)}`,
      typedSearchAttributes: [
        { key: RepositoryKey, value: input.repository.name },
        { key: BranchKey, value: input.branch },
        { key: CommitKey, value: input.sha },
        { key: StatusKey, value: 'queued' },
      ],
    });
    return { workflowId, started: true };
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return { workflowId, started: false };
    throw err;
  }
}

function firstLine(s: string): string {
  return (s.split('\n')[0] ?? '').slice(0, 120);
}
