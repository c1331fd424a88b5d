// Failure types: activities throw ApplicationFailure with one of these `type`s, workflows branch
// on `failure.cause.type`. Never branch on error class names or messages.

export const FailureType = {
  /** A configured command exited non-zero. Not retried: the same commit fails the same way. */
  CommandFailed: 'CommandFailed',
  /** The remote could not be reached (network, server, credential refused): worth retrying. */
  CheckoutFailed: 'CheckoutFailed',
  /** An operator's request the run cannot act on now (an Update validator's refusal, with the reason). */
  Refused: 'Refused',
  /** A stage waited longer than its bound for a lock (deploy, publish): an operator retries it. */
  LockTimeout: 'LockTimeout',
  /** A lock holder's lease passed before the switch it was about to make: it must not overwrite its successor. */
  LeaseLost: 'LeaseLost',
  /** The remote was reached but does not have the commit (force-pushed away, wrong repository): not retried. */
  CommitNotFound: 'CommitNotFound',
  /** An operator aborted the run. */
  Aborted: 'Aborted',
  /** A stage ended in failure; details carry the per-step results. */
  StageFailed: 'StageFailed',
  /** A stored artifact's bytes do not match the SHA-256 recorded when it was built. */
  ArtifactMismatch: 'ArtifactMismatch',
  /** The repository already holds this name, version and architecture with other bytes: a
   * published version is immutable (apt and dnf cache by version). */
  ArtifactConflict: 'ArtifactConflict',
  /** A package name the repository does not own: not in its conveyor.yml `packages`, or claimed in
   * the channel by another repository. Not retried: the same build names the same package. */
  PackageNotOwned: 'PackageNotOwned',
  /** A repository's state object is gone while its signed index is live: publishing from an
   * empty state would delete what the index names. Not retried: an operator restores the state. */
  RepositoryStateMissing: 'RepositoryStateMissing',
  /** The version was taken out of the channel with `conveyor repo remove`: publishing it again would
   * undo an operator's decision. Not retried: publish a new build, or roll back to a generation
   * that holds it (an explicit operator action that restores it). */
  VersionYanked: 'VersionYanked',
  /** A package written by the package step is not a valid package of the right format, name or version. */
  BadPackage: 'BadPackage',
  /** The package step left no .deb/.rpm of the distro's format in CONVEYOR_OUT. */
  NoPackages: 'NoPackages',
  /** The project version is unknown at the commit: no VERSION file that looks like a version, no version tag. */
  VersionUnknown: 'VersionUnknown',
  /** The docs step's output cannot be stored as a site (nothing written, a reserved or unsafe file name). */
  BadDocs: 'BadDocs',
  /** No running staging host matches the repository's tags and the distro. */
  NoHosts: 'NoHosts',
  /** A rolling upgrade failed on a host; details list every host with before/after and outcome. */
  DeployFailed: 'DeployFailed',
  /** A host reports another version than the one just installed. */
  VersionMismatch: 'VersionMismatch',
  /** The published repository does not offer the version a host should install. */
  VersionNotPublished: 'VersionNotPublished',
  /** A host's package manager cannot read the published repository or its key. */
  RepositoryUnavailable: 'RepositoryUnavailable',
  /** A host would go to a lower version outside a rollback. */
  DowngradeRefused: 'DowngradeRefused',
  /** An SSH host key is unknown, changed or revoked. */
  HostKeyRejected: 'HostKeyRejected',
  /** A host answered without the proof that the command ran. */
  HostUnreadable: 'HostUnreadable',
  /** A value that would reach a host's shell does not match its strict pattern. */
  BadInput: 'BadInput',
  /** Smoke or end-to-end tests failed against the staging hosts. */
  VerifyFailed: 'VerifyFailed',
  /** Tagging the release or cutting the next patch branch failed. */
  ReleaseFailed: 'ReleaseFailed',
  /** The release tag exists at another commit: nothing was changed. */
  ReleaseConflict: 'ReleaseConflict',
  /** Promotion would put an older build into a channel that holds a newer one (use --force). */
  OlderThanPublished: 'OlderThanPublished',
  /** The configuration names something that does not exist (repository, step, distro). */
  BadConfig: 'BadConfig',
  /** This build worker cannot create the sandbox repository code must run in (and the repository
   * does not opt out with `sandbox: { mode: none }`): the step was refused, nothing ran. */
  SandboxUnavailable: 'SandboxUnavailable',
} as const;

export type FailureTypeName = (typeof FailureType)[keyof typeof FailureType];

/** Details of a CommandFailed failure: enough for an operator to act without opening the logs. */
export interface CommandFailureDetails {
  step: string;
  exitCode: number | null;
  signal: string | null;
  logKey: string;
  tail: string;
  /** Why the step failed when it was not its own exit: `exceeded the memory limit of 256 MB
   * (sandbox.limits.memoryMb)`, `timed out after 600 s`. */
  reason?: string;
}
