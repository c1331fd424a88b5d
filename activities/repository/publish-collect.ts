// Step 8 of a publish (publish-repository.ts): garbage collection by time. A file leaves the live
// index at one switch, but a client that read the older Release or repomd.xml just before it may
// fetch it for as long as it keeps that index (apt-get update then apt-get download hours later; a
// dnf cache with metadata_expire). So a file dropped by a switch is only `retired` (with the
// time), and deleted once the retention window (default 24 h) has passed since. Every publish
// makes a generation, several within one stage when distros share a suite: retention by count
// would strand a client two generations back within seconds (issue 13, reproduced).
// Strays (keys in the publisher's prefixes that neither the live generation nor any retained one
// names: an upload of an attempt that never switched, a hand-made object) are deleted at once.
// The state's own shards and directories (state-shards.ts) are retired and deleted by the same
// rule, from the retired list: they are not listed (a listing of every shard would make each
// publish read in proportion to the channel again). A shard written by an attempt whose head never
// went live is rewritten under the same name by the retry, or stays as an unlisted stray.
// Generation snapshots follow the same window (`pruneSnapshots`): a snapshot is offered only while
// its generation's files and shards are kept.
import type { RepositoryFormat } from './publish-types';
import type { HistoryEntry, RepositoryState, RetiredFile } from './repository-state';
import type { ListedObject } from './s3-objects';
import { shardsPrefix } from './state-shards';

/** What a generation references: its packages, its index files, its state shards (`stored`). */
export type GenerationFiles = Pick<RepositoryState, 'packages' | 'current' | 'signed'> & { stored?: string[] };

/** Every file a generation references: its packages, its index files and its state shards. */
export function referenced(state: GenerationFiles): Set<string> {
  return new Set([
    ...state.packages.map((p) => p.key),
    ...state.current.map((r) => r.key),
    ...state.signed.map((r) => r.key),
    ...(state.stored ?? []),
  ]);
}

/** The retired list after a switch from `before` to `after` at `now`: files `before` named and
 * `after` does not join it; files `after` names again leave it. */
export function retire(
  before: RepositoryState & { stored?: string[] },
  after: GenerationFiles,
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
  next: GenerationFiles,
  retired: RetiredFile[],
  now: Date,
  keepMs: number,
): { remove: string[]; retired: RetiredFile[] } {
  const live = referenced(next);
  const expired = (r: RetiredFile) => now.getTime() - Date.parse(r.at) >= keepMs;
  const stays = retired.filter((r) => !expired(r));
  const keep = new Set([...live, ...stays.map((r) => r.key)]);
  const shards = shardsPrefix(fmt.stateKey);
  const expiredShards = retired.filter((r) => r.key.startsWith(shards) && expired(r) && !keep.has(r.key));
  const remove = [
    ...[...listing.keys()].filter((k) => fmt.owns(k) && !keep.has(k)),
    ...expiredShards.map((r) => r.key),
  ].sort();
  // Retired files already gone from the bucket need no record any more.
  return { remove, retired: stays.filter((r) => listing.has(r.key) || !expired(r)) };
}

/** Which snapshots to keep after a switch, from `history` (each kept generation and when it went
 * live; the live one last). Generation g's files and shards retire when the next generation goes
 * live, so g's snapshot is kept while that is within the window; the live one always. A snapshot
 * without an entry (written before `history` existed, or left by a crash) is judged by the first
 * entry after it, which went live no earlier than its successor: it may stay a little longer than
 * its shards, never shorter, and a snapshot of schema 1 holds its packages itself. */
export function pruneSnapshots(
  history: HistoryEntry[],
  listed: number[],
  live: number,
  now: Date,
  keepMs: number,
): { history: HistoryEntry[]; remove: number[] } {
  const sorted = [...history].sort((a, b) => a.generation - b.generation);
  const kept = (g: number) => {
    if (g === live) return true;
    const after = sorted.find((e) => e.generation > g);
    return after === undefined || now.getTime() - Date.parse(after.at) < keepMs;
  };
  return {
    history: sorted.filter((e) => kept(e.generation)),
    remove: listed.filter((g) => !kept(g)),
  };
}
