// Test stage: the repository's `unit` and `integration` steps, in parallel, on the build queue of
// one distro. Both run to the end even when one fails, so the stage reports every result at once.
import { ApplicationFailure, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { BuildActivities } from '../../activities';
import { FailureType, type CommandFailureDetails } from '../../common/failures';
import { buildQueue } from '../../common/queues';
import type { RepositorySteps, StepResult, TestStageInput, TestStageResult } from '../../common/types';
import { commandFailureOf, stepEnvFor } from '../support';
import { workerWaitNotice } from '../worker-wait';

const TEST_STEPS: (keyof RepositorySteps)[] = ['unit', 'integration'];

export interface TestStageFailureDetails {
  passed: StepResult[];
  failed: CommandFailureDetails[];
}

export async function testStage(input: TestStageInput): Promise<TestStageResult> {
  const { runStep } = proxyActivities<BuildActivities>({
    taskQueue: buildQueue(input.distro),
    // The step's own timeout is enforced by the activity (it kills the process tree); this one
    // is the backstop for a worker that vanished, with room for checkout and log upload.
    startToCloseTimeout: `${input.repository.stepTimeoutSeconds + 300} seconds`,
    heartbeatTimeout: '30 seconds',
    retry: { maximumAttempts: 3, nonRetryableErrorTypes: [FailureType.CommandFailed, FailureType.CommitNotFound] },
  });
  const stageWorkflowId = workflowInfo().workflowId;
  const steps = TEST_STEPS.filter((s) => input.repository.steps[s]);
  const watched = workerWaitNotice(buildQueue(input.distro), input.repository.workerWaitNoticeSeconds);
  const settled = await watched(
    Promise.allSettled(
      steps.map((step) =>
        runStep.executeWithOptions(
          { summary: `${step}: ${input.repository.steps[step] as string} at ${input.sha.slice(0, 12)}` },
          [
            {
              pipelineId: input.pipelineId,
              stageWorkflowId,
              stage: 'test',
              step,
              command: input.repository.steps[step] as string,
              cloneUrl: input.repository.cloneUrl,
              sha: input.sha,
              env: stepEnvFor(input, input.distro),
              timeoutSeconds: input.repository.stepTimeoutSeconds,
              sandbox: input.repository.sandbox,
            },
          ],
        ),
      ),
    ),
  );
  const passed: StepResult[] = [];
  const failed: CommandFailureDetails[] = [];
  settled.forEach((s, i) => {
    if (s.status === 'fulfilled') passed.push(s.value);
    else failed.push(commandFailureOf(s.reason, steps[i]));
  });
  if (failed.length > 0) {
    const details: TestStageFailureDetails = { passed, failed };
    throw ApplicationFailure.create({
      type: FailureType.StageFailed,
      message: failed
        .map((f) => `${f.step} ${f.reason ?? (f.exitCode === null ? 'failed' : `exited with code ${f.exitCode}`)}`)
        .join('; '),
      nonRetryable: true,
      details: [details],
    });
  }
  return { steps: passed };
}
