// The publish engine shared by APT and YUM. A repository is a state manifest plus four kinds of
// objects, written in this order so a reader at any moment sees a consistent repository:
//   1. pool files (new packages): unreferenced until an index names them;
//   2. hashed index files (by-hash/SHA256/…, repodata/<sha>-…): new names, so nothing live changes;
//   3. plain index files (Packages, Packages.gz) for clients without Acquire-By-Hash;
//   4. the signed index (Release, Release.gpg, InRelease; repomd.xml, repomd.xml.asc): the switch;
// then the state manifest, then deletions (packages dropped by retention, hashed files two
// generations old, strays), only once the index that no longer names them is live.
// A crash anywhere leaves the previous generation readable; the retry recomputes the same
// generation from the old manifest (everything but the signed files is deterministic) and finishes.
// Idempotent: the same input finds every file in place, writes nothing and reports changed=false.
// Exclusive access to one repository is the caller's job (a Temporal-side lock); crashes are ours.
//
// Several repositories share a channel; each owns its package names. The publisher refuses a name
// that is not among the publishing repository's `packages` or that the state records as another
// repository's, applies `keepBuilds` to the publisher's own names only, and refuses other bytes
// under a published name and version naming both builds (repository, branch, commit).
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { notOwnedMessage, ownedPackages } from '../../common/package-names';
import type { ArtifactRef, BuildIdentity } from '../../common/types';
import type { ActivityScope } from './activity-scope';
import { fetchArtifact } from './artifacts';
import { RepositoryFailure, nonRetryable } from './failures';
import type { Signer } from './gpg';
import { readState, type IndexRecord, type PublishedPackage, type RepositoryState } from './repository-state';
import {
  deleteKeys,
  getBytes,
  listAll,
  mapLimit,
  md5Hex,
  putObject,
  sameObject,
  sha256Hex,
  type ListedObject,
} from './s3-objects';
import type { PublishPackagesInput, PublishPackagesResult } from './types';

export const PUBLIC_KEY_PATH = 'keys/conveyor.asc';
const PARALLEL = 8;

export interface IndexFile {
  key: string;
  body: Buffer;
  contentType: string;
  /** Content-named (by-hash, repodata/<sha>-…): written once, never overwritten. */
  hashed: boolean;
}

/** A verified local copy of an artifact that is to become a published package. */
export interface Candidate {
  ref: ArtifactRef;
  file: string;
  key: string;
}

export interface Ingested {
  pkg: PublishedPackage;
  /** The file to upload to `pkg.key`; absent when the bucket already holds exactly it. */
  upload?: string;
}

export interface IngestContext {
  s3: S3Client;
  bucket: string;
  listing: Map<string, ListedObject>;
  signer: Signer;
  dir: string;
  signal?: AbortSignal;
}

export interface RepositoryFormat {
  format: 'apt' | 'yum';
  repoUrlPath: string;
  suite?: string;
  stateKey: string;
  /** Prefixes listed to find what is in place and what is garbage. */
  listPrefixes: string[];
  /** Whether a listed key is the publisher's to delete when nothing references it. */
  owns(key: string): boolean;
  poolKey(ref: ArtifactRef): string;
  poolContentType: string;
  compareVersions: (a: string, b: string) => number;
  /** A published package that must be made again (an rpm signed by another key). */
  stale(pkg: PublishedPackage, signerFingerprint: string): boolean;
  ingest(candidates: Candidate[], ctx: IngestContext): Promise<Ingested[]>;
  indexFiles(
    packages: PublishedPackage[],
    extra: Record<string, string[]>,
  ): { files: IndexFile[]; extra: Record<string, string[]> };
  /** The signed index files, in upload order: they switch the repository to a new generation. */
  signedFiles(
    files: IndexFile[],
    extra: Record<string, string[]>,
    signer: Signer,
    generation: number,
    now: Date,
  ): Promise<IndexFile[]>;
}

export interface EngineDeps {
  s3: S3Client;
  bucket: string;
  artifactsBucket: string;
  signer: Signer;
  /** A directory of this call only, removed by the caller. */
  dir: string;
  scope: ActivityScope;
}

const identity = (p: { name: string; version: string; arch: string }) => `${p.name} ${p.version} ${p.arch}`;

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
  if (problems.length > 0) {
    throw nonRetryable(RepositoryFailure.BadPackage, `artifact ${ref.key}: ${problems.join('; ')}`, { key: ref.key });
  }
}

/** Newest `keep` versions per package name and architecture, for the names `mine` accepts;
 * every version of any other name stays (another repository's retention is its own business). */
function retain(
  packages: PublishedPackage[],
  keep: number,
  compare: (a: string, b: string) => number,
  mine: (name: string) => boolean,
) {
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

function sameRecords(a: IndexRecord[], b: IndexRecord[]): boolean {
  const key = (r: IndexRecord) => `${r.key} ${r.sha256}`;
  const sa = new Set(a.map(key));
  return a.length === b.length && b.every((r) => sa.has(key(r)));
}

function stateWithoutTime(s: RepositoryState): string {
  return JSON.stringify({ ...s, publishedAt: '' });
}

export async function publishRepository(
  deps: EngineDeps,
  fmt: RepositoryFormat,
  input: PublishPackagesInput,
): Promise<PublishPackagesResult> {
  const { s3, bucket, signer, scope } = deps;
  const signal = scope.signal;
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
  const incoming = input.artifacts;
  for (const ref of incoming) {
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

  scope.heartbeat({ phase: 'read' });
  const state = await readState(s3, bucket, fmt.stateKey, fmt.format, signal);
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
  const listing = new Map<string, ListedObject>();
  for (const prefix of fmt.listPrefixes) {
    for (const [k, v] of await listAll(s3, bucket, prefix, signal)) listing.set(k, v);
  }

  // The wanted set: the live packages plus the incoming ones. A version is immutable once published.
  const wanted = new Map<string, PublishedPackage | Candidate['ref']>();
  for (const p of state.packages) wanted.set(identity(p), p);
  for (const ref of incoming) {
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

  // New packages, and published ones whose file is gone or differs (restored from the artifact).
  const needed = kept.filter(
    (p) => p.size < 0 || !sameObject(listing.get(p.key), p.size, p.md5) || fmt.stale(p, signer.fingerprint),
  );
  scope.checkCancelled();
  let fetched = 0;
  const candidates = await mapLimit(needed, 4, async (p, i) => {
    const file = path.join(deps.dir, `${i}-${p.artifact.file}`);
    await fetchArtifact(s3, deps.artifactsBucket, p.artifact, file, signal);
    scope.heartbeat({ phase: 'download', done: ++fetched, total: needed.length });
    return { ref: p.artifact, file, key: p.key };
  });
  const ingested = await fmt.ingest(candidates, { s3, bucket, listing, signer, dir: deps.dir, signal });
  const made = new Map(ingested.map((x) => [identity(x.pkg), x.pkg]));
  const packages = kept.map((p) => made.get(identity(p)) ?? p);

  const { files, extra } = fmt.indexFiles(packages, state.extra);
  const record = (f: IndexFile): IndexRecord => ({
    key: f.key,
    sha256: sha256Hex(f.body),
    md5: md5Hex(f.body),
    size: f.body.length,
    hashed: f.hashed,
  });
  const records = files.map(record);
  const inPlace = (r: IndexRecord) => sameObject(listing.get(r.key), r.size, r.md5);
  const indexChanged = !sameRecords(records, state.current);
  const signerChanged = state.signer !== signer.fingerprint;
  const signedDamaged = state.signed.length === 0 || !state.signed.every(inPlace);
  const resign = indexChanged || signerChanged || signedDamaged;

  const uploaded: string[] = [];
  const put = async (key: string, body: Buffer | { file: string }, opts: Parameters<typeof putObject>[4]) => {
    await putObject(s3, bucket, key, body, opts, signal);
    uploaded.push(key);
  };

  // The key first: a client configured from this run must be able to verify what follows.
  const liveKey = await getBytes(s3, bucket, PUBLIC_KEY_PATH, signal);
  if (!liveKey || liveKey.toString('utf8') !== signer.publicKey) {
    await put(PUBLIC_KEY_PATH, Buffer.from(signer.publicKey), {
      contentType: 'application/pgp-keys',
      immutable: false,
    });
  }

  const uploads = ingested.filter((x): x is Ingested & { upload: string } => x.upload !== undefined);
  let done = 0;
  await mapLimit(uploads, PARALLEL, async ({ pkg, upload }) => {
    const metadata: Record<string, string> = { sha256: pkg.sha256, 'artifact-sha256': pkg.artifact.sha256 };
    if (pkg.signer) metadata.signer = pkg.signer;
    await put(pkg.key, { file: upload }, { contentType: fmt.poolContentType, immutable: true, metadata });
    scope.heartbeat({ phase: 'pool', done: ++done, total: uploads.length });
  });
  scope.checkCancelled();

  const indexPut = (f: IndexFile) => put(f.key, f.body, { contentType: f.contentType, immutable: f.hashed });
  const missing = files.filter((_f, i) => !inPlace(records[i]));
  scope.heartbeat({ phase: 'index', total: missing.length });
  await mapLimit(
    missing.filter((f) => f.hashed),
    PARALLEL,
    indexPut,
  );
  scope.checkCancelled();
  await mapLimit(
    missing.filter((f) => !f.hashed),
    PARALLEL,
    indexPut,
  );
  scope.checkCancelled();

  const generation = resign ? state.generation + 1 : state.generation;
  let signed = state.signed;
  if (resign) {
    scope.heartbeat({ phase: 'sign', generation });
    const made = await fmt.signedFiles(files, extra, signer, generation, new Date());
    // One at a time, in order: the last of them is the switch.
    for (const f of made) await indexPut(f);
    signed = made.map(record);
  }

  const next: RepositoryState = {
    schema: 1,
    format: fmt.format,
    generation,
    signer: resign ? signer.fingerprint : state.signer,
    packages,
    current: records,
    previous: indexChanged ? state.current.filter((r) => r.hashed) : state.previous,
    signed,
    extra,
    owners: Object.fromEntries(Object.entries(owners).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
    publishedAt: new Date().toISOString(),
  };
  if (stateWithoutTime(next) !== stateWithoutTime(state)) {
    await put(fmt.stateKey, Buffer.from(JSON.stringify(next, null, 1)), {
      contentType: 'application/json',
      immutable: false,
    });
  }

  // Deletions last: everything they would break is no longer referenced by the live index.
  const keep = new Set<string>([
    ...packages.map((p) => p.key),
    ...next.current.map((r) => r.key),
    ...next.previous.map((r) => r.key),
    ...next.signed.map((r) => r.key),
  ]);
  const removed = [...listing.keys()].filter((k) => fmt.owns(k) && !keep.has(k)).sort();
  if (removed.length > 0) {
    scope.heartbeat({ phase: 'delete', total: removed.length });
    await deleteKeys(s3, bucket, removed, signal);
  }
  scope.info('repository published', {
    repo: fmt.repoUrlPath,
    suite: fmt.suite,
    generation,
    uploaded: uploaded.length,
    removed: removed.length,
  });
  return {
    changed: uploaded.length > 0 || removed.length > 0,
    uploaded,
    removed,
    repoUrlPath: fmt.repoUrlPath,
    indexKeys: [...next.current.map((r) => r.key), ...next.signed.map((r) => r.key)],
    suite: fmt.suite,
    keyPath: PUBLIC_KEY_PATH,
  };
}
