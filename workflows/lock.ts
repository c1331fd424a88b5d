// Taking and giving back a lock entity (workflows/repository-lock.ts) from a workflow: the request
// goes through an activity (signal-with-start needs a client), the grant comes back as a signal.
// `withLock` releases even when the body fails or the caller is cancelled, and lets the body leave
// a record for the next holder.
//
// Leases (patch `lock-lease-renewal`; runs recorded before it keep the fixed 30-minute lease):
// - the holder renews its lease every third of it while the body runs, in a non-cancellable
//   scope, so a deploy or publish that runs for hours (batches, retries) keeps the lock as long
//   as its workflow lives, and a vanished holder loses it within one lease;
// - the body gets the lease ID: writes that switch what readers see check it right before the
//   switch (fencing), so a holder whose lease passed never overwrites its successor's work;
// - waiting is bounded: after `waitSeconds` the request is withdrawn and the stage fails with
//   LockTimeout, naming the holder, for an operator to retry; while it waits, the pipeline's
//   status says `waiting for lock <id>, held by <run>`.
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  getExternalWorkflowHandle,
  patched,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { OrchestratorActivities } from '../activities';
import { FailureType } from '../common/failures';
import { observeLockWait } from './metrics';
import { tellParent } from './support';
import {
  lockGrantedSignal,
  releaseLockSignal,
  renewLockSignal,
  withdrawLockSignal,
  type LockGrant,
  type LockRecord,
  type LockRequest,
} from './messages';

const control = proxyActivities<OrchestratorActivities>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 10 },
});

/** Runs before the renewal patch: a holder silent for this long is presumed gone. */
const LEGACY_LEASE_SECONDS = 1800;
/** With renewal: a holder whose workflow has not renewed for this long is presumed gone. */
export const LEASE_SECONDS = 900;
/** How long a stage waits in a lock's queue before it fails for an operator to decide. */
export const WAIT_SECONDS = 6 * 3600;

export interface Locked<T> {
  result: T;
  record?: { key: string; value: LockRecord };
}

export interface LockOptions {
  /** Tests shorten these; production uses the defaults above. */
  leaseSeconds?: number;
  waitSeconds?: number;
}

export type WithLock = <T>(
  lockId: string,
  meta: LockRequest['meta'],
  body: (grant: LockGrant) => Promise<Locked<T>>,
  options?: LockOptions,
) => Promise<T>;

/** Call once per workflow run (it installs the grant handler); no state lives at module level. */
export function lockClient(): WithLock {
  const grants = new Map<string, LockGrant>();
  setHandler(lockGrantedSignal, (g) => void grants.set(g.lockId, g));
  return async function withLock<T>(
    lockId: string,
    meta: LockRequest['meta'],
    body: (grant: LockGrant) => Promise<Locked<T>>,
    options: LockOptions = {},
  ): Promise<T> {
    const me = workflowInfo().workflowId;
    const leases = patched('lock-lease-renewal');
    const leaseSeconds = leases ? (options.leaseSeconds ?? LEASE_SECONDS) : LEGACY_LEASE_SECONDS;
    grants.delete(lockId);
    // Workflow time (deterministic): from the request to the grant, or to giving up.
    const asked = Date.now();
    const waited = () => (Date.now() - asked) / 1000;
    const queued = await control.requestLock({ lockId, requester: me, leaseSeconds, meta });
    if (leases) {
      const waitSeconds = options.waitSeconds ?? WAIT_SECONDS;
      const waiting = !grants.has(lockId);
      if (waiting) await tellParent(`waiting for lock ${lockId}${queued?.holder ? `, held by ${queued.holder}` : ''}`);
      const granted = await condition(() => grants.has(lockId), `${waitSeconds} seconds`);
      if (!granted) {
        observeLockWait(lockId, 'timeout', waited());
        await CancellationScope.nonCancellable(async () => {
          await getExternalWorkflowHandle(lockId).signal(withdrawLockSignal, { requester: me });
          await tellParent(undefined);
        });
        throw ApplicationFailure.create({
          type: FailureType.LockTimeout,
          nonRetryable: true,
          message: `waited ${waitSeconds} s for lock ${lockId}${queued?.holder ? `, held by ${queued.holder}` : ''}; retry the stage when it is free`,
        });
      }
      if (waiting) await tellParent(undefined);
    } else {
      await condition(() => grants.has(lockId));
    }
    observeLockWait(lockId, 'granted', waited());
    const grant = grants.get(lockId) as LockGrant;
    let record: Locked<T>['record'];
    let done = false;
    // Renewals go on while the body winds down after a cancellation: the lock is held until released.
    const renewing = leases
      ? CancellationScope.nonCancellable(async () => {
          const every = Math.max(1, Math.floor(leaseSeconds / 3));
          while (!(await condition(() => done, `${every} seconds`))) {
            await getExternalWorkflowHandle(lockId)
              .signal(renewLockSignal, { requester: me, leaseId: grant.leaseId })
              .catch(() => undefined); // the entity is gone: nothing left to renew
          }
        })
      : Promise.resolve();
    try {
      const out = await body(grant);
      record = out.record;
      return out.result;
    } finally {
      done = true;
      await renewing;
      // Released even when the body failed or this workflow is being cancelled.
      await CancellationScope.nonCancellable(() =>
        getExternalWorkflowHandle(lockId).signal(releaseLockSignal, { requester: me, leaseId: grant.leaseId, record }),
      );
    }
  };
}
