// The pipeline runs this process has seen exist (it started them, or Temporal answered "already
// started"), so a duplicate delivery of a push (a GitHub redelivery, a hook configured twice, a
// retrying proxy) is answered `200 existing` without a gRPC round trip to Temporal.
//
// Why an answer from here is the same answer Temporal would give: a pipeline's workflow ID is a
// pure function of (repository, branch, commit) (common/ids.ts) and is started with
// REJECT_DUPLICATE, so once Temporal holds an execution with that ID every later start of it is
// refused for as long as Temporal keeps the execution (the namespace's retention: days). An entry
// lives minutes (ttlMs), far inside that; the only way the ID becomes startable again sooner is an
// operator deleting the execution (`temporal workflow delete`), and a delivery after the entry
// expires meets Temporal again. A miss always asks Temporal, and nothing is kept on disk: a
// restarted API answers its first duplicate of each push from Temporal, as before.
//
// Only verified pushes reach it: webhook.ts looks up after the signature check, so an unsigned
// request can neither read nor fill it. Bounded by entries (maxEntries, oldest out first), each a
// workflow ID of at most a few hundred bytes: 10,000 entries are a few MB at most.
export interface RecentStarts {
  /** True when the run with this workflow ID is known to exist. */
  has(workflowId: string): boolean;
  /** Records that Temporal holds a run with this workflow ID. */
  add(workflowId: string): void;
  readonly size: number;
}

export interface RecentStartsOptions {
  /** How long an entry answers (default 5 minutes). 0 disables the cache. */
  ttlMs?: number;
  /** At most this many entries; the oldest go first (default 10,000). */
  maxEntries?: number;
  /** Monotonic milliseconds; tests may feed their own. */
  now?: () => number;
}

export const RECENT_STARTS_TTL_MS = 5 * 60_000;
export const RECENT_STARTS_MAX = 10_000;

export function createRecentStarts(o: RecentStartsOptions = {}): RecentStarts {
  const ttlMs = o.ttlMs ?? RECENT_STARTS_TTL_MS;
  const maxEntries = o.maxEntries ?? RECENT_STARTS_MAX;
  if (!Number.isFinite(ttlMs) || ttlMs < 0) throw new Error(`recent starts: ttlMs must be ≥ 0, got ${ttlMs}`);
  if (!Number.isInteger(maxEntries) || maxEntries < 1) {
    throw new Error(`recent starts: maxEntries must be a positive integer, got ${maxEntries}`);
  }
  const now = o.now ?? (() => performance.now());
  // Insertion order is expiry order (every entry gets the same TTL and add() re-inserts), so the
  // first key is always the next to expire and the one to drop when full.
  const expiries = new Map<string, number>();

  return {
    has(workflowId) {
      const until = expiries.get(workflowId);
      if (until === undefined) return false;
      if (until > now()) return true;
      expiries.delete(workflowId);
      return false;
    },
    add(workflowId) {
      if (ttlMs === 0) return;
      expiries.delete(workflowId);
      expiries.set(workflowId, now() + ttlMs);
      for (const [oldest, until] of expiries) {
        if (expiries.size <= maxEntries && until > now()) break;
        expiries.delete(oldest);
      }
    },
    get size() {
      return expiries.size;
    },
  };
}
