// Step 8 of a publish (publish-repository.ts): garbage collection by time. A file leaves the live
// index at one switch, but a client that read the older Release or repomd.xml just before it may
// fetch it for as long as it keeps that index (apt-get update then apt-get download hours later; a
// dnf cache with metadata_expire). So a file dropped by a switch is only `retired` (with the
// time), and deleted once the retention window (default 24 h) has passed since. Every publish
// makes a generation, several within one stage when distros share a suite: retention by count
// would strand a client two generations back within seconds (issue 13, reproduced).
// Strays (keys in the publisher's prefixes that neither the live generation nor any retained one
// names: an upload of an attempt that never switched, a hand-made object) are deleted at once.
import type { RepositoryFormat } from './publish-types';
import type { RepositoryState, RetiredFile } from './repository-state';
import type { ListedObject } from './s3-objects';

/** Every file a generation references: its packages and its index files. */
export function referenced(state: Pick<RepositoryState, 'packages' | 'current' | 'signed'>): Set<string> {
  return new Set([
    ...state.packages.map((p) => p.key),
    ...state.current.map((r) => r.key),
    ...state.signed.map((r) => r.key),
  ]);
}

/** The retired list after a switch from `before` to `after` at `now`: files `before` named and
 * `after` does not join it; files `after` names again leave it. */
export function retire(
  before: RepositoryState,
  after: Pick<RepositoryState, 'packages' | 'current' | 'signed'>,
  now: Date,
): RetiredFile[] {
  const live = referenced(after);
  const byKey = new Map<string, RetiredFile>();
  // A state from before `retired` existed kept the previous generation's hashed indexes.
  const legacy = before.retired
    ? []
    : before.previous.map((r) => ({ key: r.key, at: before.publishedAt || now.toISOString() }));
  for (const r of [...legacy, ...(before.retired ?? [])]) byKey.set(r.key, r);
  if (before.generation > 0) {
    for (const key of referenced(before)) if (!byKey.has(key)) byKey.set(key, { key, at: now.toISOString() });
  }
  return [...byKey.values()]
    .filter((r) => !live.has(r.key))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** What to delete now, and the retired files that stay. */
export function collect(
  fmt: RepositoryFormat,
  listing: Map<string, ListedObject>,
  next: Pick<RepositoryState, 'packages' | 'current' | 'signed'>,
  retired: RetiredFile[],
  now: Date,
  keepMs: number,
): { remove: string[]; retired: RetiredFile[] } {
  const live = referenced(next);
  const expired = (r: RetiredFile) => now.getTime() - Date.parse(r.at) >= keepMs;
  const stays = retired.filter((r) => !expired(r));
  const keep = new Set([...live, ...stays.map((r) => r.key)]);
  const remove = [...listing.keys()].filter((k) => fmt.owns(k) && !keep.has(k)).sort();
  // Retired files already gone from the bucket need no record any more.
  return { remove, retired: stays.filter((r) => listing.has(r.key) || !expired(r)) };
}
