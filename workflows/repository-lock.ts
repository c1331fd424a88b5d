// Entity workflow: a FIFO mutex. `repo-lock/<bucket>/<channel>` serialises publishes to one
// repository channel; `deploy-lock/<environment>/<distro>` serialises deploys to one fleet and
// remembers, per repository, the commit deployed there (records set on release, shown on grant). The local S3 endpoint's conditional writes are check-then-write, not a lock,
// so the lock lives in Temporal. Protocol: a requester signal-with-starts this workflow with
// `acquireLock` (through an activity), waits for `lockGranted` signalled back to it, publishes, and
// signals `releaseLock`. A lease bounds how long a vanished holder can block the queue; a live
// holder renews it (`renewLock`, lock.ts), so a long deploy or publish never loses the lock to
// the next requester. A waiter that gives up sends `withdrawLock` and leaves the queue.
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  setHandler,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import {
  acquireLockSignal,
  lockGrantedSignal,
  lockStateQuery,
  releaseLockSignal,
  renewLockSignal,
  withdrawLockSignal,
  type LockState,
} from './messages';

const MAX_HISTORY_EVENTS = 2000;

export async function repositoryLock(initial: LockState = { queue: [], granted: 0 }): Promise<void> {
  const state: LockState = { ...initial, queue: [...initial.queue], records: { ...(initial.records ?? {}) } };
  const lockId = workflowInfo().workflowId;
  setHandler(lockStateQuery, () => state);
  setHandler(acquireLockSignal, (req) => {
    // A retried request (the requesting activity ran twice) must not queue the requester twice.
    if (state.holder?.requester === req.requester || state.queue.some((q) => q.requester === req.requester)) {
      if (state.holder?.requester === req.requester) {
        void grant(req.requester, state.holder.leaseId);
      }
      return;
    }
    state.queue.push(req);
  });
  setHandler(renewLockSignal, (r) => {
    // Only the current lease can be renewed: a holder whose lease passed has lost the lock.
    if (state.holder && state.holder.requester === r.requester && state.holder.leaseId === r.leaseId) {
      state.holder.renewals = (state.holder.renewals ?? 0) + 1;
      state.holder.renewedAt = new Date().toISOString();
    }
  });
  setHandler(withdrawLockSignal, (w) => {
    state.queue = state.queue.filter((q) => q.requester !== w.requester);
  });
  setHandler(releaseLockSignal, (rel) => {
    if (state.holder && state.holder.requester === rel.requester && state.holder.leaseId === rel.leaseId) {
      if (rel.record) state.records = { ...state.records, [rel.record.key]: rel.record.value };
      state.holder = undefined;
    }
  });

  async function grant(requester: string, leaseId: string): Promise<boolean> {
    try {
      await getExternalWorkflowHandle(requester).signal(lockGrantedSignal, {
        lockId,
        leaseId,
        queued: [...state.queue],
        records: state.records,
      });
      return true;
    } catch {
      return false; // the requester is gone (finished, terminated): skip it
    }
  }

  const timeToRest = () =>
    workflowInfo().continueAsNewSuggested ||
    workflowInfo().historyLength > (state.maxHistoryEvents ?? MAX_HISTORY_EVENTS);
  for (;;) {
    // Also a holder carried over a continue-as-new gets a fresh lease to finish. Each renewal
    // starts the lease again; with no renewal this is the single timer of older histories.
    while (state.holder) {
      const holder = state.holder;
      const seen = holder.renewals ?? 0;
      const moved = await condition(
        () => state.holder !== holder || (holder.renewals ?? 0) !== seen,
        `${holder.leaseSeconds} seconds`,
      );
      if (!moved) state.holder = undefined; // lease expired: the holder vanished
    }
    if (timeToRest()) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof repositoryLock>(state);
    }
    await condition(() => state.queue.length > 0 || timeToRest());
    const next = state.queue.shift();
    if (!next) continue;
    const leaseId = uuid4();
    state.holder = {
      requester: next.requester,
      leaseId,
      grantedAt: new Date().toISOString(),
      leaseSeconds: next.leaseSeconds,
    };
    state.granted += 1;
    if (!(await grant(next.requester, leaseId))) state.holder = undefined;
  }
}
