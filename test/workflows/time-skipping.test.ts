// The pipeline's operator window (days) on the time-skipping test server: a failed test stage
// parks the run in `awaiting-operator`; the window passing fails the run, a `retry` within it
// re-runs the stage. Both take seconds of wall time, not days.
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { OrchestratorActivities } from '../../activities';
import { FailureType } from '../../common/failures';
import { pipelineId } from '../../common/ids';
import type { PipelineInput, RunStepInput, StepResult } from '../../common/types';
import { repositorySpec, type ConveyorConfig } from '../../config/conveyor';
import { retrySignal, statusQuery } from '../../workflows/messages';
import type { pipeline } from '../../workflows/pipeline';
import { testConfig, uid, waitForStatus } from '../helpers/stack';
import { startTimeSkipping, startTimeSkippingWorkers } from '../helpers/time-skipping';

const DAY_MS = 24 * 3600 * 1000;

type CommitStatusRequest = Parameters<OrchestratorActivities['reportCommitStatus']>[0];

describe('pipeline operator window on the time-skipping server', () => {
  let env: TestWorkflowEnvironment;

  beforeAll(async () => {
    env = await startTimeSkipping();
  });
  afterAll(async () => {
    await env?.teardown();
  });

  /** A tested-only repository (no package step) with a 7-day operator window, and its run's input. */
  function setup(): { config: ConveyorConfig; input: PipelineInput; workflowId: string } {
    const name = `acme/widget-${uid()}`;
    const config = testConfig([
      {
        name,
        cloneUrl: 'https://git.invalid/acme/widget.git',
        steps: { unit: 'make test' },
        more: { operatorWindowHours: 7 * 24 },
      },
    ]);
    const repo = config.repositories[0];
    const sha = uid().repeat(5);
    const input: PipelineInput = {
      repository: repositorySpec(config, repo, repo.branches[0]),
      branch: 'main',
      sha,
      commit: { message: 'Fix the widget', author: 'dev', compareUrl: '' },
    };
    return { config, input, workflowId: pipelineId(name, 'main', sha) };
  }

  function unitFailure(): ApplicationFailure {
    return ApplicationFailure.nonRetryable('unit exited with code 2', FailureType.CommandFailed, {
      step: 'unit',
      exitCode: 2,
      signal: null,
      logKey: 'k',
      tail: 't',
    });
  }

  function unitPasses(input: RunStepInput): StepResult {
    return { step: input.step, exitCode: 0, headSha: input.sha, logKey: 'k2', tail: 'ok', durationMs: 1 };
  }

  it('fails the run when the operator window passes, in seconds of wall time', async () => {
    const { config, input, workflowId } = setup();
    const statuses: CommitStatusRequest[] = [];
    const workers = await startTimeSkippingWorkers(env, config, {
      orchestrator: {
        reportCommitStatus: (req) => {
          statuses.push(req);
          return Promise.resolve({ reported: true });
        },
      },
      build: { runStep: () => Promise.reject(unitFailure()) },
    });
    try {
      const handle = await env.client.workflow.start<typeof pipeline>('pipeline', {
        taskQueue: config.temporal.taskQueue,
        workflowId,
        args: [input],
      });
      const err = await handle.result().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(WorkflowFailedError);
      const cause = (err as WorkflowFailedError).cause;
      expect(cause).toBeInstanceOf(ApplicationFailure);
      expect((cause as ApplicationFailure).type).toBe(FailureType.StageFailed);
      expect(cause?.message).toBe('stage test failed: unit exited with code 2');

      // The server's clock moved by the whole window; the wall clock by jest's timeout at most.
      const status = await handle.query(statusQuery);
      expect(status.status).toBe('failed');
      expect(Date.parse(status.endedAt ?? '') - Date.parse(status.startedAt)).toBeGreaterThanOrEqual(7 * DAY_MS);
      expect(status.stages.map((s) => [s.name, s.state, s.attempt])).toEqual([['test', 'failed', 1]]);
      expect(statuses.map((s) => `${s.context} ${s.state}`)).toEqual([
        'conveyor/test pending',
        'conveyor/test failure',
      ]);
    } finally {
      await workers.stop();
    }
  });

  it('re-runs the failed stage on `retry` within the window, six days later', async () => {
    const { config, input, workflowId } = setup();
    let calls = 0;
    const workers = await startTimeSkippingWorkers(env, config, {
      orchestrator: { reportCommitStatus: () => Promise.resolve({ reported: true }) },
      build: {
        runStep: (req) => (++calls === 1 ? Promise.reject(unitFailure()) : Promise.resolve(unitPasses(req))),
      },
    });
    try {
      const handle = await env.client.workflow.start<typeof pipeline>('pipeline', {
        taskQueue: config.temporal.taskQueue,
        workflowId,
        args: [input],
      });
      // Queries and signals do not move the server's clock: the run waits here in real time.
      await waitForStatus(env.client, workflowId, 'awaiting-operator');
      await env.sleep('6 days');
      await handle.signal(retrySignal, { stage: 'test', by: 'jest' });
      const result = await handle.result();
      expect(result.status).toBe('succeeded');
      expect(calls).toBe(2);
      const [test] = result.stages;
      expect([test.name, test.state, test.attempt]).toEqual(['test', 'succeeded', 2]);
      expect(test.workflowId).toMatch(/\/test#2$/);

      const status = await handle.query(statusQuery);
      const took = Date.parse(status.endedAt ?? '') - Date.parse(status.startedAt);
      expect(took).toBeGreaterThanOrEqual(6 * DAY_MS);
      expect(took).toBeLessThan(7 * DAY_MS);
    } finally {
      await workers.stop();
    }
  });
});
