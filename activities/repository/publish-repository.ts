// The publish engine shared by APT and YUM, as the steps a reader names, each in its own file:
//   1. plan (publish-plan.ts): check the input, read the state and the listing, apply retention;
//   2. make the packages and upload the pool (publish-upload.ts): new files under new names,
//      unreferenced until an index names them;
//   3. by-hash (hashed index files: by-hash/SHA256/…, repodata/<sha>-…): new names, nothing live changes;
//   4. plain index files (Packages, Packages.gz/.xz, Contents) for clients without Acquire-By-Hash;
//   5. sign and 6. switch (publish-switch.ts): Release, Release.gpg, InRelease; repomd.xml, .asc;
//   7. state: the manifest of the generation now live (repository-state.ts). A channel's first
//      publish also stores its empty state before step 5, so a crash after the switch finds one;
//   8. collect (publish-collect.ts): delete what no generation within the retention window names.
// Readers never see an index before its files. A crash anywhere leaves the previous generation
// readable; the retry recomputes the same generation from the old manifest (everything but the
// signed files is deterministic) and finishes. Idempotent: the same input finds every file in
// place, writes nothing and reports changed=false. Exclusive access to one repository is the
// caller's job (a Temporal-side lock, fenced through `fence`); crashes are ours.
//
// Several repositories share a channel; each owns its package names. The publisher refuses a name
// that is not among the publishing repository's `packages` or that the state records as another
// repository's, applies `keepBuilds` to the publisher's own names only, and refuses other bytes
// under a published name and version naming both builds (repository, branch, commit).
import { planPublish, type PublishPlan } from './publish-plan';
import { collect, pruneSnapshots, retire, type GenerationFiles } from './publish-collect';
import { signAndSwitch } from './publish-switch';
import type { Signer } from './gpg';
import type { EngineDeps, RepositoryFormat } from './publish-types';
import { makePackages, uploadIndexes, uploadPool } from './publish-upload';
import {
  emptyState,
  generationKey,
  type GenerationChange,
  type GenerationSnapshot,
  type IndexRecord,
  type RepositoryState,
  type StateHead,
  type Yank,
} from './repository-state';
import { headOf, listGenerationNumbers, planLayout, storedKeys, writeLayout, type PlannedLayout } from './state-shards';
import type { Environment, PublishPackagesInput, PublishPackagesResult } from './types';

export type { Candidate, EngineDeps, IndexFile, Ingested, IngestContext, RepositoryFormat } from './publish-types';
export { builtBy } from './publish-plan';

export const PUBLIC_KEY_PATH = 'keys/conveyor.asc';

/** What the state records as `signer`: the keys that signed the index (one, or two while a
 * rotation overlaps), so a change of the key set re-signs at the next publish. */
export const keySetOf = (signer: Pick<Signer, 'fingerprints'>): string => signer.fingerprints.join(',');

/** Uploads the public keys when `keys/conveyor.asc` differs. The key first: a client configured
 * from this run must be able to verify what follows. */
export async function publishPublicKeys(deps: Pick<EngineDeps, 'store' | 'signer' | 'scope'>): Promise<boolean> {
  const liveKey = await deps.store.get(PUBLIC_KEY_PATH, deps.scope.signal);
  if (liveKey && liveKey.toString('utf8') === deps.signer.publicKeys) return false;
  await deps.store.put(
    PUBLIC_KEY_PATH,
    Buffer.from(deps.signer.publicKeys),
    { contentType: 'application/pgp-keys', immutable: false },
    deps.scope.signal,
  );
  return true;
}

function sameRecords(a: IndexRecord[], b: IndexRecord[]): boolean {
  const key = (r: IndexRecord) => `${r.key} ${r.sha256}`;
  const sa = new Set(a.map(key));
  return a.length === b.length && b.every((r) => sa.has(key(r)));
}

function headText(h: StateHead): string {
  return JSON.stringify({ ...h, publishedAt: '', history: h.history?.map((e) => e.generation) });
}

const byCode = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);

/** Stores a state: the shards of its layout, then the head that names them. */
async function storeState(
  deps: EngineDeps,
  fmt: RepositoryFormat,
  planned: PlannedLayout,
  head: StateHead,
  uploaded: string[],
): Promise<void> {
  await writeLayout(deps.store, planned, { cacheDir: deps.stateCache, signal: deps.scope.signal, uploaded });
  await deps.store.put(
    fmt.stateKey,
    Buffer.from(JSON.stringify(head, null, 1)),
    { contentType: 'application/json', immutable: false },
    deps.scope.signal,
  );
  uploaded.push(fmt.stateKey);
}

export async function publishRepository(
  deps: EngineDeps,
  fmt: RepositoryFormat,
  input: PublishPackagesInput,
): Promise<PublishPackagesResult> {
  deps.scope.heartbeat({ phase: 'read' });
  const plan = await planPublish(deps, fmt, input);
  return publishPlan(deps, fmt, plan, {
    environment: input.environment,
    change: { kind: 'publish', repository: input.repository },
  });
}

/** Steps 2–8 for a plan: a publish's, or a rollback's or removal's (rewrite-repository.ts). */
export async function publishPlan(
  deps: EngineDeps,
  fmt: RepositoryFormat,
  plan: PublishPlan,
  opts: { environment: Environment; change: GenerationChange; yanked?: Yank[] },
): Promise<PublishPackagesResult> {
  const { store, signer, scope } = deps;
  const signal = scope.signal;
  const uploaded: string[] = [];
  const { state } = plan;
  const { packages, ingested } = await makePackages(deps, fmt, plan);
  const { files, extra } = await fmt.indexFiles(packages, state.extra, signal);

  if (await publishPublicKeys(deps)) uploaded.push(PUBLIC_KEY_PATH);

  await uploadPool(deps, fmt, plan, ingested, uploaded);
  const records = await uploadIndexes(deps, plan, files, uploaded);

  const inPlace = (r: IndexRecord) => {
    const o = plan.listing.get(r.key);
    return o !== undefined && o.size === r.size && (!/^[0-9a-f]{32}$/.test(o.etag) || o.etag === r.md5);
  };
  const indexChanged = !sameRecords(records, state.current);
  const signerChanged = state.signer !== keySetOf(signer);
  const signedDamaged = state.signed.length === 0 || !state.signed.every(inPlace);
  const resign = indexChanged || signerChanged || signedDamaged;
  const generation = resign ? state.generation + 1 : state.generation;
  // A channel's first publish stores its empty state before the switch. Otherwise a crash between
  // the switch and step 7 would leave a live index with no state, which the retry must refuse as
  // a lost state (publish-plan.ts, readLiveState): the first generation would never finish.
  if (resign && state.generation === 0 && !state.layout) {
    const empty = planLayout(fmt.stateKey, [], {}, undefined);
    await storeState(deps, fmt, empty, headOf(emptyState(fmt.format), empty.layout), uploaded);
  }
  const signed = resign
    ? await signAndSwitch(deps, fmt, files, extra, generation, opts.environment, uploaded)
    : state.signed;

  const now = deps.now();
  const planned = planLayout(fmt.stateKey, packages, plan.owners, state.layout);
  const live: GenerationFiles = { packages, current: records, signed, stored: planned.keys };
  const before = { ...state, stored: storedKeys(fmt.stateKey, state.layout) };
  // Also without a new generation: a shard replaced by an owner's claim retires like any file.
  const retired = retire(before, live, now);
  const gc = collect(fmt, plan.listing, live, retired, now, deps.keepGenerationsMs);
  const publishedAt = resign || !state.publishedAt ? now.toISOString() : state.publishedAt;
  // A state from before `history` names its live generation's time: older snapshots are judged by it.
  const known =
    state.history ?? (state.generation > 0 ? [{ generation: state.generation, at: state.publishedAt }] : []);
  const listedSnapshots = await listGenerationNumbers(store, fmt.stateKey, signal);
  const snapshots = pruneSnapshots(
    [...known.filter((e) => e.generation !== generation), { generation, at: publishedAt }],
    listedSnapshots,
    generation,
    now,
    deps.keepGenerationsMs,
  );
  const next: RepositoryState = {
    schema: 2,
    format: fmt.format,
    generation,
    signer: resign ? keySetOf(signer) : state.signer,
    packages,
    current: records,
    previous: indexChanged ? state.current.filter((r) => r.hashed) : state.previous,
    signed,
    extra,
    owners: Object.fromEntries(Object.entries(plan.owners).sort(([a], [b]) => byCode(a, b))),
    publishedAt,
    retired: gc.retired,
    ...((opts.yanked ?? state.yanked) ? { yanked: opts.yanked ?? state.yanked } : {}),
    history: snapshots.history,
  };
  const head = headOf(next, planned.layout);
  // A schema 1 state is always rewritten: that is its migration.
  if (!state.layout || headText(head) !== headText(headOf(state, state.layout))) {
    // The head after the switch, like the state before it.
    await storeState(deps, fmt, planned, head, uploaded);
  }
  if (resign) {
    // After the state: a snapshot never describes a generation that did not go live. It names
    // the generation's shards, which are kept as long as the snapshot is (publish-collect.ts).
    const stored: Omit<GenerationSnapshot, 'packages' | 'owners'> = {
      schema: 2,
      format: fmt.format,
      generation,
      publishedAt: next.publishedAt,
      change: opts.change,
      dirs: planned.layout.dirs,
      count: packages.length,
    };
    const key = generationKey(fmt.stateKey, generation);
    await store.put(
      key,
      Buffer.from(JSON.stringify(stored)),
      { contentType: 'application/json', immutable: false },
      signal,
    );
    uploaded.push(key);
  }

  // Deletions last: everything they would break is referenced by no index within the window.
  // Snapshots before files: a snapshot is never offered once its files may be gone.
  const removeSnapshots = snapshots.remove.map((g) => generationKey(fmt.stateKey, g));
  if (removeSnapshots.length > 0) await store.delete(removeSnapshots, signal);
  if (gc.remove.length > 0) {
    scope.heartbeat({ phase: 'delete', total: gc.remove.length });
    await store.delete(gc.remove, signal);
  }
  scope.info('repository published', {
    repo: fmt.repoUrlPath,
    suite: fmt.suite,
    generation,
    uploaded: uploaded.length,
    removed: gc.remove.length,
    dropped: plan.dropped.length,
  });
  return {
    changed: uploaded.length > 0 || gc.remove.length > 0 || removeSnapshots.length > 0,
    uploaded,
    removed: gc.remove,
    repoUrlPath: fmt.repoUrlPath,
    indexKeys: [...next.current.map((r) => r.key), ...next.signed.map((r) => r.key)],
    suite: fmt.suite,
    keyPath: PUBLIC_KEY_PATH,
    generation,
    dropped: plan.dropped,
  };
}
