// Control activities: the few things a workflow cannot do itself because they need a client —
// update-with-start on the branch-state entity (build numbers) and signal-with-start on a
// repository lock. They run on the orchestrator's queue. Idempotent: the entity returns the same
// build to the same pipeline, and the lock ignores a requester already queued or holding.
import { WithStartWorkflowOperation, type Client, type Workflow } from '@temporalio/client';
import { branchStateId } from '../../common/ids';
import { MessageNames, WorkflowTypes } from '../../common/message-names';

export interface ControlDeps {
  client: Client;
  taskQueue: string;
}

export interface AllocateBuildInput {
  repository: string;
  branch: string;
  pipelineId: string;
}

export interface RequestLockInput {
  lockId: string;
  requester: string;
  leaseSeconds: number;
  meta?: { repository: string; branch: string; sha: string };
}

export interface RecordGreenInput {
  repository: string;
  branch: string;
  build: number;
  sha: string;
  version: string;
  at: string;
}

export function createControlActivities({ client, taskQueue }: ControlDeps) {
  function entityStart(repository: string, branch: string) {
    return new WithStartWorkflowOperation(WorkflowTypes.branchState, {
      workflowId: branchStateId(repository, branch),
      taskQueue,
      args: [{ repository, branch, lastBuild: 0, assigned: [] }],
      workflowIdConflictPolicy: 'USE_EXISTING',
      staticSummary: `build numbers and last green build of ${repository} ${branch}`,
    });
  }
  return {
    async allocateBuild(input: AllocateBuildInput): Promise<{ build: number }> {
      return client.workflow.executeUpdateWithStart<Workflow, { build: number }, [{ pipelineId: string }]>(
        MessageNames.allocateBuild,
        {
          args: [{ pipelineId: input.pipelineId }],
          startWorkflowOperation: entityStart(input.repository, input.branch),
        },
      );
    },

    async recordGreen(input: RecordGreenInput): Promise<void> {
      await client.workflow.signalWithStart(WorkflowTypes.branchState, {
        workflowId: branchStateId(input.repository, input.branch),
        taskQueue,
        args: [{ repository: input.repository, branch: input.branch, lastBuild: 0, assigned: [] }],
        signal: MessageNames.recordGreen,
        signalArgs: [{ build: input.build, sha: input.sha, version: input.version, at: input.at }],
      });
    },

    async recordRelease(input: {
      repository: string;
      branch: string;
      stableBranch: string;
      version: string;
      at: string;
    }): Promise<void> {
      await client.workflow.signalWithStart(WorkflowTypes.branchState, {
        workflowId: branchStateId(input.repository, input.branch),
        taskQueue,
        args: [{ repository: input.repository, branch: input.branch, lastBuild: 0, assigned: [] }],
        signal: MessageNames.recordRelease,
        signalArgs: [{ stableBranch: input.stableBranch, version: input.version, at: input.at }],
      });
    },

    async requestLock(input: RequestLockInput): Promise<void> {
      await client.workflow.signalWithStart(WorkflowTypes.repositoryLock, {
        workflowId: input.lockId,
        taskQueue,
        args: [{ queue: [], granted: 0 }],
        signal: MessageNames.acquireLock,
        signalArgs: [{ requester: input.requester, leaseSeconds: input.leaseSeconds, meta: input.meta }],
        staticSummary: `serialises ${input.lockId.startsWith('deploy-lock/') ? 'deploys' : 'publishes'} to ${input.lockId.replace(/^[a-z-]+\//, '')}`,
      });
    },
  };
}

export type ControlActivities = ReturnType<typeof createControlActivities>;
