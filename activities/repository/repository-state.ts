// The per-channel state manifest: what the live generation of a repository contains, so that an
// incremental publish needs neither the old packages nor the old indexes, only this object.
// It is written after the signed index it describes is live; a crash before that leaves the older
// manifest, and the retry rebuilds the same generation from it (index files are deterministic).
// It also records who may publish what: the owner repository of each package name in the channel
// (`owners`), and per published file the build that made it (`artifact`: repository, branch,
// commit, build), so a conflict or a refusal can name both sides.
//
// Generations are kept by time, not count: `retired` lists every file (pool file, hashed index)
// that a generation referenced and the live one does not, with the time it stopped being
// referenced. A client that read an older Release or repomd.xml up to that moment may still ask for
// it, so it is deleted only once `keepGenerationsMs` (default 24 h) has passed since. One list, not a
// list per generation: its size is what changed within the window, not generations × packages.
// States written before `retired` existed have `previous` (the last generation's hashed indexes):
// they are read as retired at the state's `publishedAt`.
//
// Large repositories: a publish reads and writes state in proportion to what changed, not to the
// size of the channel (issue 13; before, this object was read and rewritten whole: 20.7 MB at
// 20,000 debs, 73 MB for 6,000 rpms of 200 files). The object at `stateKey` is now a small head
// (schema 2, `StateHead`): generation, signer, index records, retired files, yanks, and a map of
// 256 directory buckets (the first two hex digits of SHA-256(name)) to the SHA-256 of a directory
// object; a directory maps each package name of its bucket to the SHA-256 of that name's shard;
// a shard holds the name's owner and published versions with their index data (`meta`).
// Directories and shards are content-named (`<state>.shards/{d,n}/<sha256>.json`, canonical JSON)
// and written once, before the head; the head is written after the switch, last, like Release:
// until then the previous head and its shards stay live and readable, and a retry writes the same
// content names again (state-shards.ts). A publish adding one package writes its name's shard,
// one directory and the head: about 20 KB at any size.
// Reads: the index files (Packages, primary.xml…) list every package, so building them needs every
// package's index data: "read only the incoming names' shards" alone cannot rebuild them. The
// publisher therefore keeps a worker-local cache of shards and directories keyed by their SHA-256
// (immutable, so never stale; verified on read): a worker reads the head and only the objects it
// has not seen, which after its first publish to a channel is what other workers changed. A new
// worker reads the whole channel once. Readers that need one name (`publishedVersions`) read the
// head, one directory and one shard.
// Shards and directories a generation stops referencing are `retired` like pool files and deleted
// once the retention window has passed; generation snapshots reference the shards of their
// generation (not a copy of the packages), so a snapshot is offered only while its shards and files
// are retained: snapshots are pruned by the same rule (`history`: when each retained generation
// went live; generation g's files retire when g+1 goes live).
// Migration: a schema 1 state (this whole object, written by older workers) is read as before; the
// first publish writes its shards and replaces it with a head. Older workers then refuse the head
// ("not a … state manifest of schema 1") instead of publishing from a stale copy, and their
// activity is retried until an upgraded worker takes it.
import type { ArtifactRef } from '../../common/types';

export interface PublishedPackage {
  name: string;
  version: string;
  arch: string;
  /** Where the bytes came from: a package lost from the bucket is restored from here. Its
   * repository, branch, commit and build name the build that published this file (absent for
   * files published before Conveyor recorded them). */
  artifact: ArtifactRef;
  /** Object key of the published file in the environment bucket. */
  key: string;
  /** Of the published bytes (an rpm is signed on publish, so these differ from the artifact's). */
  sha256: string;
  md5: string;
  size: number;
  /** rpm: the key fingerprint the file is signed with. */
  signer?: string;
  /** Index data of the package: deb `control`, `sha1`; rpm `primary`, `filelists`, `other`. */
  meta: Record<string, string>;
}

export interface IndexRecord {
  key: string;
  sha256: string;
  md5: string;
  size: number;
  /** Content-named: never rewritten, kept one generation after it leaves the index. */
  hashed: boolean;
}

export interface RepositoryState {
  /** As read: 1, the whole state in one object (before shards); 2, from a head and its shards. */
  schema: 1 | 2;
  format: 'apt' | 'yum';
  generation: number;
  signer: string;
  packages: PublishedPackage[];
  /** Unsigned index files of the live generation. */
  current: IndexRecord[];
  /** Hashed index files of the generation before: a client that fetched its signed index
   * before the switch still finds them. */
  previous: IndexRecord[];
  /** The signed index files (Release, Release.gpg, InRelease; repomd.xml, .asc). */
  signed: IndexRecord[];
  /** Format-specific facts that outlive one publish (apt: the suite's architectures). */
  extra: Record<string, string[]>;
  /** Package name → owner/repo allowed to publish it in this channel; only that repository's
   * retention touches it. Manifests written before ownership existed have none: a name without an
   * owner is claimed by the first repository that publishes it after the upgrade (the publisher
   * cannot tell who published it before), and until then no retention touches it. */
  owners?: Record<string, string>;
  publishedAt: string;
  /** Files no live index references any more, with when they stopped being referenced (ISO): kept
   * until the retention window has passed, so clients holding an older index still find them. */
  retired?: RetiredFile[];
  /** Versions removed with `conveyor repo remove`, newest last. */
  yanked?: Yank[];
  /** Generations whose snapshots are kept, with when each went live, oldest first (schema 2). */
  history?: HistoryEntry[];
  /** In memory only: where this generation's packages are stored (schema 2; absent for a schema 1
   * state, which is migrated at the next publish). */
  layout?: StoredLayout;
}

export interface HistoryEntry {
  generation: number;
  at: string;
}

/** Content names (SHA-256) of a generation's directories and shards. */
export interface StoredLayout {
  /** Bucket (2 hex digits) → SHA-256 of its directory object. */
  dirs: Record<string, string>;
  /** Package name → SHA-256 of its shard. */
  names: Record<string, string>;
}

/** What is stored at `stateKey` from schema 2 on: the state without its packages and owners. */
export interface StateHead extends Omit<RepositoryState, 'schema' | 'packages' | 'owners' | 'layout'> {
  schema: 2;
  /** Bucket → SHA-256 of its directory object. */
  dirs: Record<string, string>;
  /** How many packages the generation holds (for listings that do not read the shards). */
  count: number;
}

/** A directory object: the names of one bucket and their shards. */
export interface StateDirectory {
  names: Record<string, string>;
}

/** A shard: one package name's owner and published versions. */
export interface NameShard {
  name: string;
  owner?: string;
  packages: PublishedPackage[];
}

/** A version taken out of a channel on purpose (`conveyor repo remove`), with why. */
export interface Yank {
  name: string;
  version: string;
  reason: string;
  /** Who asked, as the operator said (the CLI sends $USER). */
  by?: string;
  at: string;
}

/** What made a generation: a publish of a build, a rollback to an earlier generation, a removal. */
export type GenerationChange =
  | { kind: 'publish'; repository: string }
  | { kind: 'rollback'; to: number; by?: string }
  | { kind: 'remove'; name: string; version: string; reason: string; by?: string };

/** One generation as it went live, kept beside the state (`<state>.generations/<n>.json`): what
 * `conveyor repo list|show` read and what `repo rollback --to N` republishes. Written after the
 * state, overwritten by a retry that remade the same generation (the live one wins). */
export interface GenerationSnapshot {
  /** 1: packages and owners inline (written before shards existed); 2: `dirs` names the
   * generation's shards, and a reader fills `packages` and `owners` from them. */
  schema: 1 | 2;
  format: 'apt' | 'yum';
  generation: number;
  publishedAt: string;
  change: GenerationChange;
  packages: PublishedPackage[];
  owners: Record<string, string>;
  dirs?: Record<string, string>;
  count?: number;
}

/** `conveyor-state/apt/bookworm-unstable.generations/` for `conveyor-state/apt/bookworm-unstable.json`. */
export function generationsPrefix(stateKey: string): string {
  return `${stateKey.replace(/\.json$/, '')}.generations/`;
}

/** Zero-padded, so a listing sorts by generation. */
export function generationKey(stateKey: string, generation: number): string {
  return `${generationsPrefix(stateKey)}${String(generation).padStart(8, '0')}.json`;
}

export interface RetiredFile {
  key: string;
  at: string;
}

export function emptyState(format: 'apt' | 'yum'): RepositoryState {
  return {
    schema: 2,
    format,
    generation: 0,
    signer: '',
    packages: [],
    current: [],
    previous: [],
    signed: [],
    extra: {},
    owners: {},
    publishedAt: '',
  };
}

/** A schema 1 state (one object); schema 2 heads are read with state-shards.ts. */
export function parseState(bytes: Buffer, where: string, format: 'apt' | 'yum'): RepositoryState {
  const state = JSON.parse(bytes.toString('utf8')) as RepositoryState;
  if (state.schema !== 1 || state.format !== format) {
    throw new Error(`${where} is not a ${format} state manifest of schema 1`);
  }
  return state;
}
