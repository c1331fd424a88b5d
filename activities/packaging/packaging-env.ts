// What the package and docs steps are told, and where their outputs are kept. Webhook values
// (branch, sha) reach the commands only as these environment variables; the keys are built from
// config values (repository name, distro) and the build number, never from file contents
// except the file's own name.
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../common/failures';
import type { RepositorySpec } from '../../common/types';

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

/** `<owner>/<repo>/<build>`: the part of every package and docs key that names one build. */
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
  return `${owner}/${repo}/${input.build}`;
}

export function packageKey(prefix: string, input: PackagingContext, distro: string, file: string): string {
  return `${prefix}packages/${buildPath(input)}/${distro}/${file}`;
}

export function docsKey(prefix: string, input: PackagingContext, relative: string): string {
  return `${prefix}docs/${buildPath(input)}/${relative}`;
}
