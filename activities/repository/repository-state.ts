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
// Large repositories (design, not yet built): this object is read and rewritten whole on every
// publish, about 73 MB for 6,000 rpms with 200 files each, most of it the per-package index
// fragments (`meta`). The plan to make a publish read and write in proportion to what changed:
//   - `packages/<name>.json` shards, one object per package name (its versions with their meta),
//     written write-once under a content name (`packages/<name>/<sha256>.json`);
//   - a small head object (`head.json`: generation, signer, current/signed/retired records,
//     owners, and the shard name → content key map), written last, like the Release: the switch;
//   - a publish reads the head, then only the shards of the incoming names (plus, once, all
//     shards when the index files must be rebuilt from scratch, e.g. a missing Packages file);
//     the index files themselves are rebuilt from cached per-arch fragments in the shards;
//   - old shards are collected with the same time-based retention as pool files.
// Migration: a head that is absent while this single-object state exists is made from it on the
// first publish (the old object stays readable, as `publishedVersions` and older workers read it).
import type { S3Client } from '@aws-sdk/client-s3';
import type { ArtifactRef } from '../../common/types';
import { getBytes } from './s3-objects';

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
  schema: 1;
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
  schema: 1;
  format: 'apt' | 'yum';
  generation: number;
  publishedAt: string;
  change: GenerationChange;
  packages: PublishedPackage[];
  owners: Record<string, string>;
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
    schema: 1,
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

/** The state object, or undefined when there is none (a new repository, or a lost state file:
 * the caller tells them apart by looking for a live signed index). */
export async function readStateObject(
  s3: S3Client,
  bucket: string,
  key: string,
  format: 'apt' | 'yum',
  signal?: AbortSignal,
): Promise<RepositoryState | undefined> {
  const bytes = await getBytes(s3, bucket, key, signal);
  if (!bytes) return undefined;
  return parseState(bytes, `s3://${bucket}/${key}`, format);
}

export function parseState(bytes: Buffer, where: string, format: 'apt' | 'yum'): RepositoryState {
  const state = JSON.parse(bytes.toString('utf8')) as RepositoryState;
  if (state.schema !== 1 || state.format !== format) {
    throw new Error(`${where} is not a ${format} state manifest of schema 1`);
  }
  return state;
}

export async function readState(
  s3: S3Client,
  bucket: string,
  key: string,
  format: 'apt' | 'yum',
  signal?: AbortSignal,
): Promise<RepositoryState> {
  const bytes = await getBytes(s3, bucket, key, signal);
  if (!bytes) return emptyState(format);
  const state = JSON.parse(bytes.toString('utf8')) as RepositoryState;
  if (state.schema !== 1 || state.format !== format) {
    throw new Error(`s3://${bucket}/${key} is not a ${format} state manifest of schema 1`);
  }
  return state;
}
