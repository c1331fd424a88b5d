// The pipeline: one run per pushed commit (ID `pipeline/<owner>/<repo>/<branch>/<sha>`), the parent
// of one child workflow per stage. It owns the run's status (query `status`) and its search
// attributes, upserted at every stage change so the Web UI and `conveyor list` see where it is.
import {
  ApplicationFailure,
  executeChild,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { stageId, type StageName } from '../common/ids';
import { FailureType } from '../common/failures';
import { BranchKey, CommitKey, RepositoryKey, StageKey, StatusKey } from '../common/search-attributes';
import type { PipelineInput, PipelineResult, PipelineStatus, RunStatus, StageStatus } from '../common/types';
import { statusQuery } from './messages';
import { testStage, type TestStageFailureDetails } from './stages/test';
import { messageOf, rootApplicationFailure } from './support';

export async function pipeline(input: PipelineInput): Promise<PipelineResult> {
  const id = workflowInfo().workflowId;
  const state: PipelineStatus = {
    workflowId: id,
    repository: input.repository.name,
    branch: input.branch,
    sha: input.sha,
    status: 'running',
    startedAt: now(),
    stages: [{ name: 'test', state: 'pending', attempt: 1, workflowId: stageId(id, 'test'), logKeys: [] }],
  };
  setHandler(statusQuery, () => state);
  upsertSearchAttributes([
    { key: RepositoryKey, value: input.repository.name },
    { key: BranchKey, value: input.branch },
    { key: CommitKey, value: input.sha },
    { key: StatusKey, value: 'running' },
  ]);

  const testDistro = input.repository.distros[0];
  try {
    const stage = begin(state, 'test');
    const result = await executeChild(testStage, {
      workflowId: stage.workflowId,
      args: [
        { pipelineId: id, repository: input.repository, branch: input.branch, sha: input.sha, distro: testDistro },
      ],
    });
    stage.logKeys = result.steps.map((s) => s.logKey);
    finish(stage, 'succeeded');
  } catch (err) {
    const stage = state.stages.find((s) => s.state === 'running');
    if (stage) fail(stage, err);
    end(state, 'failed', stage ? `stage ${stage.name} failed: ${stage.error}` : messageOf(err));
    throw ApplicationFailure.create({
      type: FailureType.StageFailed,
      message: state.failure ?? 'pipeline failed',
      nonRetryable: true,
      details: [{ stage: stage?.name, tail: stage?.tail, logKeys: stage?.logKeys }],
    });
  }
  end(state, 'succeeded');
  return { status: state.status, stages: state.stages };
}

function now(): string {
  // Date in workflow code is the SDK's deterministic clock (the workflow task's time).
  return new Date().toISOString();
}

function begin(state: PipelineStatus, name: StageName): StageStatus {
  const stage = state.stages.find((s) => s.name === name);
  if (!stage) throw ApplicationFailure.nonRetryable(`unknown stage ${name}`, FailureType.BadConfig);
  stage.state = 'running';
  stage.startedAt = now();
  state.stage = name;
  upsertSearchAttributes([{ key: StageKey, value: name }]);
  return stage;
}

function finish(stage: StageStatus, to: StageStatus['state']): void {
  stage.state = to;
  stage.endedAt = now();
}

function fail(stage: StageStatus, err: unknown): void {
  finish(stage, 'failed');
  const app = rootApplicationFailure(err);
  const details = app?.details?.[0] as Partial<TestStageFailureDetails> | undefined;
  if (details?.failed) {
    stage.logKeys = [...(details.passed ?? []).map((p) => p.logKey), ...details.failed.map((f) => f.logKey)].filter(
      Boolean,
    );
    stage.tail = details.failed.map((f) => `--- ${f.step} (exit ${f.exitCode ?? f.signal})\n${f.tail}`).join('\n');
  }
  stage.error = app?.message ?? messageOf(err);
}

function end(state: PipelineStatus, status: RunStatus, failure?: string): void {
  state.status = status;
  state.endedAt = now();
  if (failure) state.failure = failure;
  upsertSearchAttributes([{ key: StatusKey, value: status }]);
}
