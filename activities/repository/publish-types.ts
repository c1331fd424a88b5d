// The types the publish steps and the two formats share (publish-repository.ts tells the order).
import type { S3Client } from '@aws-sdk/client-s3';
import type { ArtifactRef } from '../../common/types';
import type { ActivityScope } from './activity-scope';
import type { DebIndexFacts } from './deb-index-facts';
import type { Signer } from './gpg';
import type { RepoStore } from './repo-store';
import type { RpmIndexFacts } from './rpm-index-facts';
import type { PublishedPackage } from './repository-state';
import type { FileHashes, ListedObject } from './s3-objects';
import type { Environment } from './types';

export interface IndexFile {
  key: string;
  body: Buffer;
  contentType: string;
  /** Content-named (by-hash, repodata/<sha>-…): written once, never overwritten. */
  hashed: boolean;
}

/** An artifact that is to become a published package: a verified local copy (`file`), or, for a
 * .deb whose builder stored its facts (deb-index-facts.ts) or an rpm signed at package time with
 * signPackages' facts (rpm-index-facts.ts), those facts and a way to fetch it. */
export interface Candidate {
  ref: ArtifactRef;
  /** The verified local copy; absent when `facts` stand in for it. */
  file?: string;
  key: string;
  /** The file's hashes, computed while it was downloaded (absent: the format hashes it). */
  hashes?: FileHashes;
  /** Where the artifact's bytes are, for a server-side copy when the pool file is those bytes. */
  source?: { bucket: string; key: string };
  /** The builder's facts of a .deb, checked against the reference (deb-index-facts.ts). */
  facts?: DebIndexFacts;
  /** signPackages' facts of an rpm signed at package time, checked against the reference
   * (rpm-index-facts.ts). */
  rpmFacts?: RpmIndexFacts;
  /** Downloads and verifies the artifact, for when it must be uploaded after all. */
  fetch?: () => Promise<string>;
}

export interface Ingested {
  pkg: PublishedPackage;
  /** The file to upload to `pkg.key` (or how to fetch it); absent when the bucket already holds
   * exactly it. */
  upload?: string | (() => Promise<string>);
  /** The upload is exactly the artifact's bytes at `source` (checked by SHA-256 on download, or
   * named by the builder's facts): the pool file may be a server-side copy of it instead, verified
   * by S3's own SHA-256. */
  copyFrom?: { bucket: string; key: string };
}

export interface IngestContext {
  store: RepoStore;
  listing: Map<string, ListedObject>;
  signer: Signer;
  dir: string;
  signal?: AbortSignal;
}

/** What a signed index says beyond its files: when it was made, until when clients may trust it,
 * and which environment it belongs to (Origin/Label, so clients can pin staging apart). */
export interface ReleaseFacts {
  generation: number;
  now: Date;
  /** Absent: no Valid-Until (a repository that is never re-signed must not expire). */
  validUntil?: Date;
  environment: Environment;
}

export interface RepositoryFormat {
  format: 'apt' | 'yum';
  repoUrlPath: string;
  suite?: string;
  stateKey: string;
  /** Prefixes listed to find what is in place and what is garbage. */
  listPrefixes: string[];
  /** The signed index files, the last one being what a client reads first (InRelease, repomd.xml). */
  signedKeys: string[];
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
    signal?: AbortSignal,
  ): Promise<{ files: IndexFile[]; extra: Record<string, string[]> }>;
  /** The signed index files, in upload order: they switch the repository to a new generation. */
  signedFiles(
    files: IndexFile[],
    extra: Record<string, string[]>,
    signer: Signer,
    facts: ReleaseFacts,
  ): Promise<IndexFile[]>;
}

export interface EngineDeps {
  store: RepoStore;
  /** The artifacts bucket (artifact keys are full keys: no prefix is added). */
  artifactsStore: { s3: S3Client; bucket: string };
  signer: Signer;
  /** A directory of this call only, removed by the caller. */
  dir: string;
  /** The worker-local cache of state shards by SHA-256 (state-shards.ts); none: read them all. */
  stateCache?: string;
  scope: ActivityScope;
  /** How long a generation's files stay after a newer one replaced it (default 24 h). */
  keepGenerationsMs: number;
  /** Valid-Until = now + this; 0 or absent: none. */
  validMs?: number;
  /** The clock (tests move it forward). */
  now: () => Date;
  /** Called right before the switch (the first signed file): throws when the caller's lock lease
   * is no longer held, so a stale holder never overwrites its successor's index. */
  fence?: () => Promise<void>;
}
