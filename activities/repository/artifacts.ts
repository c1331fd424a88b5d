// Reading artifacts back from the artifacts bucket. The SHA-256 in the reference is the identity
// of a build: what passed staging is what production gets, so bytes that hash differently are
// refused outright (a retry would read the same bytes). The download computes every hash the
// indexes need on the way (FileHashes), so the file is not read again for them.
import type { S3Client } from '@aws-sdk/client-s3';
import type { ArtifactRef } from '../../common/types';
import { RepositoryFailure, nonRetryable } from './failures';
import { downloadToFile, type FileHashes } from './s3-objects';

export async function fetchArtifact(
  s3: S3Client,
  bucket: string,
  ref: Pick<ArtifactRef, 'key' | 'sha256' | 'size'>,
  file: string,
  signal?: AbortSignal,
): Promise<FileHashes> {
  const got = await downloadToFile(s3, bucket, ref.key, file, signal);
  if (!got) {
    throw nonRetryable(
      RepositoryFailure.ArtifactMismatch,
      `artifact s3://${bucket}/${ref.key} does not exist; re-run the package stage to rebuild it`,
      { key: ref.key, expected: ref.sha256 },
    );
  }
  if (got.sha256 !== ref.sha256.toLowerCase() || got.size !== ref.size) {
    throw nonRetryable(
      RepositoryFailure.ArtifactMismatch,
      `artifact s3://${bucket}/${ref.key} has SHA-256 ${got.sha256} (${got.size} bytes), ` +
        `but its reference promises ${ref.sha256} (${ref.size} bytes): refusing to publish bytes that were not ` +
        'the ones built and tested; re-run the package stage',
      { key: ref.key, expected: ref.sha256, actual: got.sha256, expectedSize: ref.size, actualSize: got.size },
    );
  }
  return got;
}
