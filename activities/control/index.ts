// Control activities: the few things a workflow cannot do itself because they need a client —
// update-with-start on the branch-state entity (build numbers) and signal-with-start on a
// repository lock. They run on the orchestrator's queue. Idempotent: the entity returns the same
// build to the same pipeline, and the lock ignores a requester already queued or holding.
import { WithStartWorkflowOperation, type Client, type Workflow } from '@temporalio/client';
import { branchStateId, pipelineId as pipelineIdOf } from '../../common/ids';
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

    /**
     * The commits that got a build number on this branch before `input.build` (newest first, at
     * most `limit`), from the branch-state entity's remembered assignments: the pipeline asks
     * whether one of them descends from its own commit (a newer commit delivered first).
     */
    async earlierBuilds(
      input: AllocateBuildInput & { build: number; limit?: number },
    ): Promise<{ sha: string; build: number }[]> {
      const state = await client.workflow
        .getHandle(branchStateId(input.repository, input.branch))
        .query<{ assigned: { pipelineId: string; build: number }[] }>(MessageNames.branchState);
      const prefix = `${pipelineIdOf(input.repository, input.branch, '')}`;
      return state.assigned
        .filter((a) => a.build < input.build && a.pipelineId.startsWith(prefix))
        .map((a) => ({ sha: a.pipelineId.slice(prefix.length), build: a.build }))
        .filter((a) => /^[0-9a-f]{40}$/.test(a.sha))
        .sort((a, b) => b.build - a.build)
        .slice(0, input.limit ?? 5);
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

    /** Queues the requester; returns who holds the lock now (for the waiting status), when known. */
    async requestLock(input: RequestLockInput): Promise<{ holder?: string }> {
      const handle = await client.workflow.signalWithStart(WorkflowTypes.repositoryLock, {
        workflowId: input.lockId,
        taskQueue,
        args: [{ queue: [], granted: 0 }],
        signal: MessageNames.acquireLock,
        signalArgs: [{ requester: input.requester, leaseSeconds: input.leaseSeconds, meta: input.meta }],
        staticSummary: `serialises ${input.lockId.startsWith('deploy-lock/') ? 'deploys' : 'publishes'} to ${input.lockId.replace(/^[a-z-]+\//, '')}`,
      });
      // Best effort: the holder only makes the status more helpful.
      const state = await handle
        .query<{ holder?: { requester: string } }>(MessageNames.lockState)
        .catch(() => undefined);
      const holder = state?.holder?.requester;
      return holder && holder !== input.requester ? { holder } : {};
    },

    /** Fencing: true while `leaseId` is the lock's current lease. Writes that switch what readers
     * see call this right before the switch. */
    async leaseHeld(input: { lockId: string; leaseId: string }): Promise<boolean> {
      const state = await client.workflow
        .getHandle(input.lockId)
        .query<{ holder?: { leaseId: string } }>(MessageNames.lockState);
      return state.holder?.leaseId === input.leaseId;
    },
  };
}

export type ControlActivities = ReturnType<typeof createControlActivities>;
