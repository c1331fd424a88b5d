// Step 1 of a publish (publish-repository.ts): decide, before a byte is written, what the next
// generation holds. Checks the input (names, ownership, one name-version-arch per bytes), reads
// the state and the listing, applies retention (`keepBuilds` per package name and architecture,
// the publishing repository's own names only) and says which incoming artifacts retention drops
// at once (an older build than those kept): the result reports them, a publish that published
// nothing it was given is not a silent success.
//
// A missing state while a signed index is live is not an empty repository: collecting garbage
// from an empty state would delete every other package and by-hash file (issue 13, reproduced:
// other architectures vanished from Release). The publish is refused, saying how to recover.
//
// A version removed with `conveyor repo remove` (the state's `yanked`) is never published into that
// channel again by a publish or a promotion (a rerun of an old stage, a retry after the removal):
// the publish is refused, naming who removed it, when and why. Only `conveyor repo rollback` to a
// generation that holds it brings it back (rewrite-repository.ts), and that clears the record.
import { notOwnedMessage, ownedPackages } from '../../common/package-names';
import type { ArtifactRef, BuildIdentity } from '../../common/types';
import { RepositoryFailure, nonRetryable } from './failures';
import type { EngineDeps, RepositoryFormat } from './publish-types';
import { emptyState, type PublishedPackage, type RepositoryState } from './repository-state';
import { loadState } from './state-shards';
import { sameObject, type ListedObject } from './s3-objects';
import type { PublishPackagesInput } from './types';

export interface DroppedArtifact {
  name: string;
  version: string;
  arch: string;
  key: string;
  reason: string;
}

export interface PublishPlan {
  state: RepositoryState;
  /** Package name → owner repository, with this publish's claims. */
  owners: Record<string, string>;
  listing: Map<string, ListedObject>;
  /** The packages of the next generation, sorted; new ones are placeholders (size -1). */
  kept: PublishedPackage[];
  /** Those whose file must be made (new, missing or damaged in the bucket, stale). */
  needed: PublishedPackage[];
  dropped: DroppedArtifact[];
  /** `apt bookworm-unstable (staging, unstable)`, for messages. */
  where: string;
}

export const identity = (p: { name: string; version: string; arch: string }) => `${p.name} ${p.version} ${p.arch}`;

const SAFE_FILE = /^[A-Za-z0-9][A-Za-z0-9._+~^%-]*$/;
const SAFE_WORD = /^[A-Za-z0-9][A-Za-z0-9._+~^:-]*$/;

function checkRef(ref: ArtifactRef, format: 'deb' | 'rpm'): void {
  const problems: string[] = [];
  if (ref.format !== format) problems.push(`format ${ref.format}, but the distro takes ${format}`);
  if (!SAFE_FILE.test(ref.file) || !ref.file.endsWith(`.${format}`))
    problems.push(`unsafe file name ${JSON.stringify(ref.file)}`);
  if (!SAFE_WORD.test(ref.name) || ref.name.includes(':')) problems.push(`bad name ${JSON.stringify(ref.name)}`);
  if (!SAFE_WORD.test(ref.version)) problems.push(`bad version ${JSON.stringify(ref.version)}`);
  if (!/^[a-z0-9_]+$/.test(ref.arch)) problems.push(`bad architecture ${JSON.stringify(ref.arch)}`);
  if (!/^[0-9a-f]{64}$/i.test(ref.sha256)) problems.push('sha256 is not 64 hex digits');
  if (ref.signer !== undefined && (format !== 'rpm' || !/^[0-9A-F]{40}$/.test(String(ref.signer))))
    problems.push(`signer ${JSON.stringify(ref.signer)} is not an OpenPGP v4 fingerprint of a signed rpm`);
  if (problems.length > 0) {
    throw nonRetryable(RepositoryFailure.BadPackage, `artifact ${ref.key}: ${problems.join('; ')}`, { key: ref.key });
  }
}

/** Newest `keep` versions per package name and architecture, for the names `mine` accepts;
 * every version of any other name stays (another repository's retention is its own business). */
export function retain(
  packages: PublishedPackage[],
  keep: number,
  compare: (a: string, b: string) => number,
  mine: (name: string) => boolean,
): PublishedPackage[] {
  const groups = new Map<string, PublishedPackage[]>();
  for (const p of packages) {
    const g = `${p.name} ${p.arch}`;
    groups.set(g, [...(groups.get(g) ?? []), p]);
  }
  const kept: PublishedPackage[] = [];
  for (const group of groups.values()) {
    group.sort((a, b) => compare(b.version, a.version));
    kept.push(...(mine(group[0].name) ? group.slice(0, keep) : group));
  }
  // Code-unit order, not localeCompare: every worker must produce byte-identical indexes.
  const byCode = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);
  return kept.sort((a, b) => byCode(a.name, b.name) || byCode(a.arch, b.arch) || compare(a.version, b.version));
}

/** `acme/widget branch "main" commit abc… build 7`, as far as the reference records it. */
export function builtBy(ref: BuildIdentity): string {
  if (!ref.commit)
    return `${ref.repository ?? 'a build'} (commit not recorded: published before Conveyor recorded commits)`;
  const branch = ref.branch !== undefined ? ` branch ${JSON.stringify(ref.branch)}` : '';
  const build = ref.build !== undefined ? ` build ${ref.build}` : '';
  return `${ref.repository ?? '?'}${branch} commit ${ref.commit}${build}`;
}

function identity3(ref: BuildIdentity): BuildIdentity {
  return { repository: ref.repository, branch: ref.branch, commit: ref.commit, build: ref.build };
}

function notOwned(message: string, details: Record<string, unknown>) {
  return nonRetryable(RepositoryFailure.PackageNotOwned, message, details);
}

/** Refuses what no repository state could accept: bad settings, another distro's or another
 * repository's artifacts, names outside the repository's packages. */
export function checkInput(input: PublishPackagesInput): string[] {
  if (!Number.isInteger(input.keepBuilds) || input.keepBuilds < 1) {
    throw nonRetryable(RepositoryFailure.BadConfig, `keepBuilds must be a positive integer, got ${input.keepBuilds}`);
  }
  if (typeof input.repository !== 'string' || !/^[^/\s]+\/[^/\s]+$/.test(input.repository)) {
    throw nonRetryable(
      RepositoryFailure.BadConfig,
      `publishing needs the publishing repository as owner/repo, got ${JSON.stringify(input.repository)}`,
    );
  }
  const owned = ownedPackages({ name: input.repository, packages: input.packages });
  for (const ref of input.artifacts) {
    if (ref.distro !== input.distro) {
      throw nonRetryable(
        RepositoryFailure.BadPackage,
        `artifact ${ref.key} was built for distro ${ref.distro}, not ${input.distro}: publish each distro's artifacts to its own repository`,
      );
    }
    checkRef(ref, input.distroSpec.format);
    // Defence in depth: the package stage refused these already.
    if (!owned.includes(ref.name)) {
      throw notOwned(`artifact ${ref.key}: ${notOwnedMessage(ref.name, input.repository, owned)}`, {
        name: ref.name,
        repository: input.repository,
        packages: owned,
      });
    }
    if (ref.repository !== undefined && ref.repository !== input.repository) {
      throw notOwned(
        `artifact ${ref.key} (${ref.name}) was built by ${ref.repository}, not by ${input.repository}: ` +
          'a repository publishes only its own builds',
        { name: ref.name, repository: input.repository, builtBy: ref.repository },
      );
    }
  }
  return owned;
}

/** The state, or an empty one for a repository that has never been published. A state file that
 * is gone while the signed index is live is refused (module comment). */
export async function readLiveState(
  deps: Pick<EngineDeps, 'store' | 'scope' | 'stateCache'>,
  fmt: RepositoryFormat,
  listing: Map<string, ListedObject>,
): Promise<RepositoryState> {
  const state = await loadState(deps.store, fmt, { signal: deps.scope.signal, cacheDir: deps.stateCache });
  if (state) return state;
  const live = fmt.signedKeys.filter((k) => listing.has(k));
  if (live.length === 0) return emptyState(fmt.format);
  throw nonRetryable(
    RepositoryFailure.StateMissing,
    `${deps.store.url(fmt.stateKey)} (the repository state) is missing, but ${live.map((k) => deps.store.url(k)).join(', ')} ` +
      'is live: publishing from an empty state would delete every package this index names. Refusing. ' +
      'Restore the state object (from S3 versioning or a backup) and retry the stage; or, to start this channel ' +
      'afresh, delete its signed index files first (clients then see it empty until the next publish)',
    { stateKey: fmt.stateKey, live },
  );
}

export async function planPublish(
  deps: Pick<EngineDeps, 'store' | 'scope' | 'signer' | 'stateCache'>,
  fmt: RepositoryFormat,
  input: PublishPackagesInput,
): Promise<PublishPlan> {
  const signal = deps.scope.signal;
  checkInput(input);
  const incoming = input.artifacts;
  const listing = new Map<string, ListedObject>();
  for (const prefix of fmt.listPrefixes) {
    for (const [k, v] of await deps.store.list(prefix, signal)) listing.set(k, v);
  }
  const state = await readLiveState(deps, fmt, listing);
  const where = `${fmt.repoUrlPath}${fmt.suite ? ` ${fmt.suite}` : ''} (${input.environment}, ${input.channel})`;
  const owners: Record<string, string> = { ...state.owners };
  for (const name of [...new Set(incoming.map((r) => r.name))].sort()) {
    const owner = owners[name];
    if (owner !== undefined && owner !== input.repository) {
      throw notOwned(
        `package ${JSON.stringify(name)} in ${where} belongs to ${owner}; ${input.repository} cannot publish it ` +
          `(a package name belongs to the first repository that published it in a channel; rename the package, ` +
          `or publish to another channel)`,
        { name, owner, repository: input.repository },
      );
    }
    // No owner recorded: a new name, or a manifest from before owners existed. Either way the
    // first repository to publish it claims it (see RepositoryState.owners).
    owners[name] = input.repository;
  }
  const mine = (name: string) => owners[name] === input.repository;

  // The wanted set: the live packages plus the incoming ones. A version is immutable once published.
  const wanted = new Map<string, PublishedPackage | ArtifactRef>();
  for (const p of state.packages) wanted.set(identity(p), p);
  const yanks = new Map((state.yanked ?? []).map((y) => [`${y.name} ${y.version}`, y]));
  for (const ref of incoming) {
    const yank = yanks.get(`${ref.name} ${ref.version}`);
    if (yank && !wanted.has(identity(ref))) {
      throw nonRetryable(
        RepositoryFailure.Yanked,
        `${ref.name} ${ref.version} was removed from ${where} at ${yank.at}${yank.by ? ` by ${yank.by}` : ''} ` +
          `(${JSON.stringify(yank.reason)}): refusing to publish it again. Publish a new build, or bring it back ` +
          'on purpose with `conveyor repo rollback` to a generation that holds it',
        { name: ref.name, version: ref.version, yanked: yank },
      );
    }
    const had = wanted.get(identity(ref));
    const hadRef = had && ('artifact' in had ? had.artifact : had);
    // Two distros of one suite (amd64, arm64) both build its `Architecture: all` packages: the
    // first one published stays, as Debian builds arch-all once. Within one distro it is a conflict.
    if (hadRef && hadRef.distro !== ref.distro) continue;
    const hadSha = hadRef?.sha256;
    if (hadRef && hadSha !== undefined && hadSha.toLowerCase() !== ref.sha256.toLowerCase()) {
      throw nonRetryable(
        RepositoryFailure.ArtifactConflict,
        `${ref.name} ${ref.version} ${ref.arch} is already in ${where} with other bytes: published from ` +
          `${builtBy(hadRef)} (SHA-256 ${hadSha}); refusing the one from ${builtBy(ref)} (SHA-256 ${ref.sha256}). ` +
          'A published version never changes: publish it under a new build number',
        {
          name: ref.name,
          version: ref.version,
          arch: ref.arch,
          published: hadSha,
          incoming: ref.sha256,
          publishedBy: identity3(hadRef),
          incomingBy: identity3(ref),
        },
      );
    }
    if (!had) wanted.set(identity(ref), ref);
  }
  // Placeholders let retention choose before anything is downloaded.
  const asPackage = (v: PublishedPackage | ArtifactRef): PublishedPackage =>
    'artifact' in v
      ? v
      : {
          name: v.name,
          version: v.version,
          arch: v.arch,
          artifact: v,
          key: fmt.poolKey(v),
          sha256: '',
          md5: '',
          size: -1,
          meta: {},
        };
  const kept = retain([...wanted.values()].map(asPackage), input.keepBuilds, fmt.compareVersions, mine);
  const byKey = new Map<string, PublishedPackage>();
  for (const p of kept) {
    const other = byKey.get(p.key);
    if (other) {
      throw nonRetryable(
        RepositoryFailure.BadPackage,
        `${identity(p)} and ${identity(other)} would both be ${p.key}: file names must be unique per channel`,
      );
    }
    byKey.set(p.key, p);
  }
  const keptIds = new Set(kept.map(identity));
  const dropped = incoming
    .filter((ref) => !keptIds.has(identity(ref)))
    .map((ref) => ({
      name: ref.name,
      version: ref.version,
      arch: ref.arch,
      key: ref.key,
      reason:
        `older than the ${input.keepBuilds} newest builds of ${ref.name} (${ref.arch}) kept in ${where}` +
        ' (retention.keepBuilds): not published',
    }));
  // New packages, and published ones whose file is gone or differs (restored from the artifact).
  const needed = kept.filter(
    (p) => p.size < 0 || !sameObject(listing.get(p.key), p.size, p.md5) || fmt.stale(p, deps.signer.fingerprint),
  );
  return { state, owners, listing, kept, needed, dropped, where };
}
