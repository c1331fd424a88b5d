// The per-channel state manifest: what the live generation of a repository contains, so that an
// incremental publish needs neither the old packages nor the old indexes, only this object.
// It is written after the signed index it describes is live; a crash before that leaves the older
// manifest, and the retry rebuilds the same generation from it (index files are deterministic).
// It also records who may publish what: the owner repository of each package name in the channel
// (`owners`), and per published file the build that made it (`artifact`: repository, branch,
// commit, build), so a conflict or a refusal can name both sides.
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
