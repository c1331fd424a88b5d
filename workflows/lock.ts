// Taking and giving back a lock entity (workflows/repository-lock.ts) from a workflow: the request
// goes through an activity (signal-with-start needs a client), the grant comes back as a signal.
// `withLock` releases even when the body fails or the caller is cancelled, and lets the body leave
// a record for the next holder.
import {
  CancellationScope,
  condition,
  getExternalWorkflowHandle,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { OrchestratorActivities } from '../activities';
import { lockGrantedSignal, releaseLockSignal, type LockGrant, type LockRecord, type LockRequest } from './messages';

const control = proxyActivities<OrchestratorActivities>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 10 },
});

/** A holder silent for this long is presumed gone and the lock moves on. */
const LEASE_SECONDS = 1800;

export interface Locked<T> {
  result: T;
  record?: { key: string; value: LockRecord };
}

export type WithLock = <T>(
  lockId: string,
  meta: LockRequest['meta'],
  body: (grant: LockGrant) => Promise<Locked<T>>,
) => Promise<T>;

/** Call once per workflow run (it installs the grant handler); no state lives at module level. */
export function lockClient(): WithLock {
  const grants = new Map<string, LockGrant>();
  setHandler(lockGrantedSignal, (g) => void grants.set(g.lockId, g));
  return async function withLock<T>(
    lockId: string,
    meta: LockRequest['meta'],
    body: (grant: LockGrant) => Promise<Locked<T>>,
  ): Promise<T> {
    const me = workflowInfo().workflowId;
    grants.delete(lockId);
    await control.requestLock({ lockId, requester: me, leaseSeconds: LEASE_SECONDS, meta });
    await condition(() => grants.has(lockId));
    const grant = grants.get(lockId) as LockGrant;
    let record: Locked<T>['record'];
    try {
      const out = await body(grant);
      record = out.record;
      return out.result;
    } finally {
      // Released even when the body failed or this workflow is being cancelled.
      await CancellationScope.nonCancellable(() =>
        getExternalWorkflowHandle(lockId).signal(releaseLockSignal, { requester: me, leaseId: grant.leaseId, record }),
      );
    }
  };
}
