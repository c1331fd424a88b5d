// Generations as snapshots (aptly's model): every publish leaves a snapshot of the generation it
// made (repository-state.ts, GenerationSnapshot). From them:
// - `rollback --to N`: a NEW generation whose packages are generation N's, published like any
//   other (pool files first, then indexes, then the signed switch, then state and snapshot), so a
//   client never sees a half-rolled-back repository and a client holding the live index still
//   finds its files (they are retired by time, not deleted). Pool files of N that were collected
//   since are restored from their artifacts, as a publish restores a lost file. A removed version
//   that N holds comes back and is no longer recorded as yanked.
// - `remove <name> <version>`: a new generation without that version (every architecture), the
//   reason recorded in the state (`yanked`) and in the snapshot; publishes and promotions into the
//   channel refuse that version from then on (publish-plan.ts).
// Both run under the channel's publish lock (the repository-rewrite workflow holds it) and are
// fenced by its lease like a publish.
import { RepositoryFailure, nonRetryable } from './failures';
import { identity, readLiveState, type PublishPlan } from './publish-plan';
import { publishPlan } from './publish-repository';
import type { EngineDeps, RepositoryFormat } from './publish-types';
import type { RepoStore } from './repo-store';
import {
  generationKey,
  type GenerationChange,
  type GenerationSnapshot,
  type RepositoryState,
  type Yank,
} from './repository-state';
import { sameObject, type ListedObject } from './s3-objects';
import { listGenerationNumbers, loadLayout } from './state-shards';
import type { RewriteRepositoryInput, RewriteRepositoryResult } from './types';

/** A package name and version as they may reach an index: the publisher's own patterns. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;
const VERSION = /^[A-Za-z0-9][A-Za-z0-9._+~^:-]{0,127}$/;

/** Generation N's snapshot, its packages and owners read from its shards (`packages: false`: only
 * its summary, `count`, as `conveyor repo list` shows it). */
export async function readSnapshot(
  store: RepoStore,
  fmt: RepositoryFormat,
  generation: number,
  signal?: AbortSignal,
  opts: { packages?: boolean; cacheDir?: string } = {},
): Promise<GenerationSnapshot | undefined> {
  const bytes = await store.get(generationKey(fmt.stateKey, generation), signal);
  if (!bytes) return undefined;
  const snap = JSON.parse(bytes.toString('utf8')) as GenerationSnapshot;
  if (
    (snap.schema !== 1 && snap.schema !== 2) ||
    snap.format !== fmt.format ||
    snap.generation !== generation ||
    (snap.schema === 2 && (typeof snap.dirs !== 'object' || snap.dirs === null))
  ) {
    throw nonRetryable(
      RepositoryFailure.BadConfig,
      `${store.url(generationKey(fmt.stateKey, generation))} is not the snapshot of ${fmt.format} generation ${generation}`,
    );
  }
  if (snap.schema === 1) return { ...snap, count: snap.packages.length };
  if (opts.packages === false) return { ...snap, packages: [], owners: {} };
  const { packages, owners } = await loadLayout(store, fmt.stateKey, snap.dirs!, { signal, cacheDir: opts.cacheDir });
  return { ...snap, packages, owners, count: packages.length };
}

/** The generations with a snapshot, oldest first. */
export function listGenerations(store: RepoStore, fmt: RepositoryFormat, signal?: AbortSignal): Promise<number[]> {
  return listGenerationNumbers(store, fmt.stateKey, signal);
}

export async function rewriteRepository(
  deps: EngineDeps,
  fmt: RepositoryFormat,
  input: RewriteRepositoryInput,
): Promise<RewriteRepositoryResult> {
  const { store, scope } = deps;
  const signal = scope.signal;
  scope.heartbeat({ phase: 'read' });
  const listing = new Map<string, ListedObject>();
  for (const prefix of fmt.listPrefixes) {
    for (const [k, v] of await store.list(prefix, signal)) listing.set(k, v);
  }
  const state = await readLiveState(deps, fmt, listing);
  const where = `${fmt.repoUrlPath}${fmt.suite ? ` ${fmt.suite}` : ''} (${input.environment}, ${input.channel})`;
  if (state.generation === 0) {
    throw nonRetryable(RepositoryFailure.BadConfig, `${where} has never been published: nothing to change`);
  }
  const at = deps.now().toISOString();
  let wanted: RepositoryState['packages'];
  let change: GenerationChange;
  let yanked = state.yanked;
  let owners = { ...(state.owners ?? {}) };
  const action = input.action;
  if (action.kind === 'rollback') {
    if (!Number.isInteger(action.to) || action.to < 1) {
      throw nonRetryable(RepositoryFailure.BadConfig, `--to must be a generation number, got ${action.to}`);
    }
    if (action.to === state.generation) {
      throw nonRetryable(RepositoryFailure.BadConfig, `${where} is at generation ${action.to} already`);
    }
    const snap = await readSnapshot(store, fmt, action.to, signal, { cacheDir: deps.stateCache });
    if (!snap) {
      const known = await listGenerations(store, fmt, signal);
      throw nonRetryable(
        RepositoryFailure.BadConfig,
        `${where} has no snapshot of generation ${action.to} (snapshots: ${known.join(', ') || 'none'}; ` +
          'generations published before snapshots existed cannot be rolled back to)',
      );
    }
    wanted = snap.packages;
    // Restoring a removed version is the operator's explicit decision: it is no longer yanked
    // (publish-plan.ts refuses yanked versions), and the snapshot of this generation says why.
    const restored = new Set(wanted.map((p) => `${p.name} ${p.version}`));
    yanked = yanked?.filter((y) => !restored.has(`${y.name} ${y.version}`));
    // Names the channel gained since keep their owners; names of N keep theirs.
    owners = { ...owners, ...snap.owners };
    change = { kind: 'rollback', to: action.to, ...(input.by ? { by: input.by } : {}) };
  } else {
    if (!NAME.test(action.name) || !VERSION.test(action.version)) {
      throw nonRetryable(
        RepositoryFailure.BadConfig,
        `refused package ${JSON.stringify(action.name)} version ${JSON.stringify(action.version)}: not a package name and version`,
      );
    }
    const reason = typeof action.reason === 'string' ? action.reason.trim() : '';
    if (!reason || reason.length > 500 || [...reason].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)) {
      throw nonRetryable(RepositoryFailure.BadConfig, 'a removal needs a reason: one line of at most 500 characters');
    }
    const hit = (p: { name: string; version: string }) => p.name === action.name && p.version === action.version;
    if (!state.packages.some(hit)) {
      const versions = state.packages.filter((p) => p.name === action.name).map((p) => p.version);
      throw nonRetryable(
        RepositoryFailure.BadConfig,
        `${action.name} ${action.version} is not in ${where}` +
          (versions.length ? ` (it has ${[...new Set(versions)].join(', ')})` : ` (no version of ${action.name})`),
      );
    }
    wanted = state.packages.filter((p) => !hit(p));
    const yank: Yank = {
      name: action.name,
      version: action.version,
      reason,
      at,
      ...(input.by ? { by: input.by } : {}),
    };
    yanked = [...(state.yanked ?? []), yank];
    change = {
      kind: 'remove',
      name: action.name,
      version: action.version,
      reason,
      ...(input.by ? { by: input.by } : {}),
    };
  }
  const byKey = new Map(wanted.map((p) => [p.key, p]));
  if (byKey.size !== wanted.length) {
    throw nonRetryable(RepositoryFailure.BadConfig, `the packages of ${where} would share file names`);
  }
  const plan: PublishPlan = {
    state,
    owners,
    listing,
    kept: wanted,
    // A file collected since (or damaged, or signed by a retired key) is made again from its artifact.
    needed: wanted.filter(
      (p) => p.size < 0 || !sameObject(listing.get(p.key), p.size, p.md5) || fmt.stale(p, deps.signer.fingerprint),
    ),
    dropped: [],
    where,
  };
  const before = new Set(state.packages.map(identity));
  const after = new Set(wanted.map(identity));
  const published = await publishPlan(deps, fmt, plan, { environment: input.environment, change, yanked });
  return {
    changed: published.changed,
    generation: published.generation ?? state.generation,
    previousGeneration: state.generation,
    repoUrlPath: published.repoUrlPath,
    suite: published.suite,
    packages: wanted.length,
    added: [...after].filter((p) => !before.has(p)).sort(),
    removed: [...before].filter((p) => !after.has(p)).sort(),
    restored: plan.needed.map((p) => p.key),
  };
}
