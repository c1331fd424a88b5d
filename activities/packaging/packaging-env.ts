// What the package and docs steps are told, and where their outputs are kept. Webhook values
// (branch, sha) reach the commands only as these environment variables. Keys name the whole
// build identity (repository, branch, commit, build): the branch is untrusted and percent-encoded
// into one segment, the commit must be a full SHA, and nothing comes from file contents except the
// package file's own (checked) name and the docs' relative paths.
import crypto from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../common/failures';
import type { BuildIdentity, RepositorySpec } from '../../common/types';

export interface PackagingContext {
  repository: RepositorySpec;
  branch: string;
  sha: string;
  build: number;
}

export function packagingEnv(
  input: PackagingContext,
  version: string,
  sourceDateEpoch: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    CONVEYOR_REPOSITORY: input.repository.name,
    CONVEYOR_BRANCH: input.branch,
    CONVEYOR_COMMIT: input.sha,
    CONVEYOR_CHANNEL: input.repository.channel,
    CONVEYOR_VERSION: version,
    CONVEYOR_BUILD: String(input.build),
    // The reproducible-builds convention: tools that honour it stamp the commit time, not now.
    SOURCE_DATE_EPOCH: sourceDateEpoch,
    ...extra,
  };
}

/** The commit, as the webhook and `conveyor trigger` accept it (SHA-1 or SHA-256 object names). */
const COMMIT = /^[0-9a-f]{40}([0-9a-f]{24})?$/;

/**
 * One path segment of an object key from an untrusted string (a branch name, where git allows
 * `/`, `%`, unicode and more): bytes outside `[A-Za-z0-9_.-]` and a leading `.` are
 * percent-encoded, so the segment holds no `/`, is never `.` or `..`, and two branches never share
 * a segment (`%` itself is encoded). A segment longer than 200 characters keeps its first 120 and
 * appends `~` and 16 hex digits of the value's SHA-256: `~` never appears in a plain encoding, and
 * keys stay under S3's 1,024-byte limit whatever the branch.
 */
export function keySegment(value: string): string {
  let out = '';
  for (const [i, b] of Buffer.from(value, 'utf8').entries()) {
    const plain = b < 0x80 && /[A-Za-z0-9_.-]/.test(String.fromCharCode(b)) && !(i === 0 && b === 0x2e);
    out += plain ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  if (out.length <= 200) return out;
  return `${out.slice(0, 120)}~${crypto.createHash('sha256').update(value).digest('hex').slice(0, 16)}`;
}

/**
 * `<owner>/<repo>/<branch>/<build>/<commit>`: the part of every package and docs key that names one
 * build of one commit, as log keys do through the stage's workflow ID. Build numbers are per branch
 * and versions come from the tree, so two branches (or a force-pushed one) can both build
 * `1.0.0-1`: only the whole identity keeps their bytes apart.
 */
export function buildPath(input: PackagingContext): string {
  if (!Number.isSafeInteger(input.build) || input.build < 1) {
    throw ApplicationFailure.nonRetryable(
      `build number must be a positive integer, got ${input.build}`,
      FailureType.BadConfig,
    );
  }
  const [owner, repo, ...rest] = input.repository.name.split('/');
  if (!owner || !repo || rest.length > 0) {
    throw ApplicationFailure.nonRetryable(
      `repository name must be owner/repo, got ${JSON.stringify(input.repository.name)}`,
      FailureType.BadConfig,
    );
  }
  if (!COMMIT.test(input.sha)) {
    throw ApplicationFailure.nonRetryable(
      `commit must be a full lowercase SHA, got ${JSON.stringify(input.sha)}`,
      FailureType.BadConfig,
    );
  }
  if (typeof input.branch !== 'string' || input.branch === '') {
    throw ApplicationFailure.nonRetryable('branch must be a non-empty name', FailureType.BadConfig);
  }
  return [keySegment(owner), keySegment(repo), keySegment(input.branch), String(input.build), input.sha].join('/');
}

export function packageKey(prefix: string, input: PackagingContext, distro: string, file: string): string {
  return `${prefix}packages/${buildPath(input)}/${keySegment(distro)}/${file}`;
}

export function docsKey(prefix: string, input: PackagingContext, relative: string): string {
  return `${prefix}docs/${buildPath(input)}/${relative}`;
}

/** The build's identity as object metadata (S3 user metadata is ASCII: the branch is
 * URI-encoded there). */
export function identityMetadata(input: PackagingContext): Record<string, string> {
  return {
    repository: input.repository.name,
    branch: encodeURIComponent(input.branch),
    commit: input.sha,
    build: String(input.build),
  };
}

/** The build's identity as references carry it (common/types.ts BuildIdentity). */
export function identityOf(input: PackagingContext): Required<BuildIdentity> {
  return { repository: input.repository.name, branch: input.branch, commit: input.sha, build: input.build };
}
