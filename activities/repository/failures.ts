// Failure types of the repository activities, from common/failures.ts (workflows branch on
// `failure.cause.type`), with what each means for a publish.
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../common/failures';

export const RepositoryFailure = {
  /** An artifact's bytes do not match the SHA-256 its reference promises. Never retried: promotion
   * must publish exactly the bytes that passed staging, and a retry would read the same bytes. */
  ArtifactMismatch: FailureType.ArtifactMismatch,
  /** The repository already holds this name, version and architecture with other bytes. A published
   * version is immutable (apt and dnf cache by version): publish a new build instead. */
  ArtifactConflict: FailureType.ArtifactConflict,
  /** A package name the publishing repository does not own (not in its `packages`, or recorded as
   * another repository's in the channel's state). Publishing it would replace or evict another
   * project's package. */
  PackageNotOwned: FailureType.PackageNotOwned,
  /** A package disagrees with its reference (name, version, arch) or is not a package. */
  BadPackage: FailureType.BadPackage,
  /** A docs manifest that cannot become a site (unsafe path, no index.html, wrong count). */
  BadDocs: FailureType.BadDocs,
  /** The state object is missing while the signed index is live (publish-plan.ts). */
  StateMissing: FailureType.RepositoryStateMissing,
  /** The version was removed from the channel with `conveyor repo remove` (publish-plan.ts). */
  Yanked: FailureType.VersionYanked,
  /** The signing key or a name (channel, distro, environment) cannot work. */
  BadConfig: FailureType.BadConfig,
} as const;

export type RepositoryFailureType = (typeof RepositoryFailure)[keyof typeof RepositoryFailure];

export function nonRetryable(type: RepositoryFailureType, message: string, details?: unknown): ApplicationFailure {
  return ApplicationFailure.create({ type, message, nonRetryable: true, details: details ? [details] : undefined });
}
