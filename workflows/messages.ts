// Every signal, query and update of Conveyor's workflows, beside its payload type. They work from
// `temporal workflow query --type status` as well as from `conveyor status`.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { ChatEvent } from '../common/chat';
import type { HostExecRequest, HostExecResult } from '../common/host-exec';
import { MessageNames } from '../common/message-names';
import type { PipelineStatus } from '../common/types';

/** The run as an operator sees it: status, current stage, each stage with state, attempt, times, log keys. */
export const statusQuery = defineQuery<PipelineStatus>('status');

export interface RetryRequest {
  /** `test`, `package`, `package/<distro>`, `publish`…; absent: every failed stage that waits. */
  stage?: string;
  by?: string;
}

export interface AbortRequest {
  reason: string;
  by?: string;
}

/** Re-runs failed stages that wait for an operator, as new child attempts (`…/<stage>#2`). Ignored when nothing waits. */
export const retrySignal = defineSignal<[RetryRequest]>('retry');
/** Ends the run as `aborted`, cancelling what runs. Ignored once the run has ended. */
export const abortSignal = defineSignal<[AbortRequest]>('abort');

export interface ApproveRequest {
  by: string;
  comment?: string;
}

export interface RejectRequest {
  by: string;
  reason: string;
}

/** Lets a run that waits in `awaiting-approval` promote to production. Ignored when nothing waits. */
export const approveSignal = defineSignal<[ApproveRequest]>('approve');
/** Ends a run that waits in `awaiting-approval` as `rejected`, promoting nothing. Ignored when nothing waits. */
export const rejectSignal = defineSignal<[RejectRequest]>('reject');

/** What an operator Update answers when the run accepted it; a refusal comes back as the
 * validator's error, with the reason (nothing waits for it, the run has ended, no such stage). */
export interface OperatorAnswer {
  accepted: true;
  /** The stages a retry re-runs, the decision taken, … */
  detail: string;
}

// The same four actions as Updates (same names): the sender gets a definite accepted/refused
// answer from the workflow itself instead of a signal sent after a status query that may be
// stale by then. The signals stay for `temporal workflow signal` and for scripts.
export const retryUpdate = defineUpdate<OperatorAnswer, [RetryRequest]>('retry');
export const abortUpdate = defineUpdate<OperatorAnswer, [AbortRequest]>('abort');
export const approveUpdate = defineUpdate<OperatorAnswer, [ApproveRequest]>('approve');
export const rejectUpdate = defineUpdate<OperatorAnswer, [RejectRequest]>('reject');

// ---- branch-state entity (`branch-state/<owner>/<repo>/<branch>`) ----

export interface GreenBuild {
  build: number;
  sha: string;
  version: string;
  at: string;
}

export interface BranchState {
  repository: string;
  branch: string;
  /** The last build number handed out; 0 before the first. */
  lastBuild: number;
  /** Which pipeline got which number, newest last, so a retried pipeline keeps its number. */
  assigned: { pipelineId: string; build: number }[];
  lastGreen?: GreenBuild;
  /** The repository's stable release branch and released version, as the release stage records them. */
  stableBranch?: string;
  releasedVersion?: string;
  /** Continue-as-new after this many history events (default 2000; tests lower it). */
  maxHistoryEvents?: number;
}

export interface AllocateBuildRequest {
  pipelineId: string;
}

/** Hands out the next build number, or the one this pipeline already has. */
export const allocateBuildUpdate = defineUpdate<{ build: number }, [AllocateBuildRequest]>(MessageNames.allocateBuild);
export const recordGreenSignal = defineSignal<[GreenBuild]>(MessageNames.recordGreen);

export interface ReleaseRecord {
  stableBranch: string;
  version: string;
  at: string;
}

/** The release stage records the repository's stable release branch and the version it released. */
export const recordReleaseSignal = defineSignal<[ReleaseRecord]>(MessageNames.recordRelease);
export const branchStateQuery = defineQuery<BranchState>(MessageNames.branchState);

// ---- lock entity (`repo-lock/<bucket>/<channel>`, `deploy-lock/<environment>/<distro>`) ----

export interface LockRequest {
  /** Workflow ID of the requester; the grant is signalled back to it. */
  requester: string;
  /** The lock is taken back after this long, in case the holder vanished without releasing. */
  leaseSeconds: number;
  /** What the requester is about to do: lets the holder see newer queued work (supersede). */
  meta?: { repository: string; branch: string; sha: string };
}

/** What a lock remembers for its holders across grants, e.g. the commit deployed to an environment. */
export interface LockRecord {
  sha: string;
  version: string;
  branch: string;
  at: string;
}

export interface LockGrant {
  lockId: string;
  leaseId: string;
  /** The requests still waiting behind this grant, oldest first. */
  queued?: LockRequest[];
  /** Records kept by the lock, by key (for deploys: the repository name). */
  records?: Record<string, LockRecord>;
}

export interface LockRelease {
  requester: string;
  leaseId: string;
  /** Stored before the lock moves on, so the next holder sees it. */
  record?: { key: string; value: LockRecord };
}

/** The holder is alive: its lease starts again (lock.ts renews every third of the lease). */
export interface LockRenewal {
  requester: string;
  leaseId: string;
}

/** A waiter that gave up (its wait timed out, it was cancelled) leaves the queue. */
export interface LockWithdrawal {
  requester: string;
}

export interface LockState {
  holder?: {
    requester: string;
    leaseId: string;
    grantedAt: string;
    leaseSeconds: number;
    /** How often the holder renewed its lease; each renewal restarts the lease. */
    renewals?: number;
    renewedAt?: string;
  };
  queue: LockRequest[];
  granted: number;
  records?: Record<string, LockRecord>;
  /** Continue-as-new after this many history events (default 2000; tests lower it). */
  maxHistoryEvents?: number;
}

export const acquireLockSignal = defineSignal<[LockRequest]>(MessageNames.acquireLock);
export const releaseLockSignal = defineSignal<[LockRelease]>(MessageNames.releaseLock);
export const lockGrantedSignal = defineSignal<[LockGrant]>(MessageNames.lockGranted);
export const renewLockSignal = defineSignal<[LockRenewal]>(MessageNames.renewLock);
export const withdrawLockSignal = defineSignal<[LockWithdrawal]>(MessageNames.withdrawLock);
export const lockStateQuery = defineQuery<LockState>(MessageNames.lockState);

/** A stage child tells its pipeline what it waits for (a lock, a worker), shown in the run's status. */
export interface StageNote {
  workflowId: string;
  /** Absent: the wait is over. */
  note?: string;
}
export const stageNoteSignal = defineSignal<[StageNote]>(MessageNames.stageNote);

// ---- verify stage (`…/verify`) ----

/** Runs one command on a staging host of this run while its e2e step runs: sent by the builder's
 * host-exec relay for the step's CONVEYOR_HOST_EXEC (common/host-exec.ts). The validator refuses
 * other hosts, malformed requests and requests outside the e2e step. */
export const hostExecUpdate = defineUpdate<HostExecResult, [HostExecRequest]>(MessageNames.hostExec);

// ---- chat notifier (`<pipeline id>/chat`) ----

/** The pipeline tells its chat notifier what happened; the notifier posts it (in `seq` order). */
export const chatEventSignal = defineSignal<[ChatEvent]>('chatEvent');
