// Failure types of the fleet activities. The deploy stage branches on `failure.cause.type`
// (shared/STYLE.md), so each way a host can fail has its own type. These extend common/failures.ts
// (CommandFailed, BadConfig come from there); the new ones should move into that table once the
// deploy stage needs them.
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../common/failures';

export const FleetFailure = {
  /** The host reports another version after the upgrade said it succeeded (a held or pinned
   * package, a package manager that only simulates). Never retried: the same host does the same. */
  VersionMismatch: FailureType.VersionMismatch,
  /** The published repository does not offer the wanted version: a broken or missing publish. */
  VersionNotPublished: FailureType.VersionNotPublished,
  /** The host's package manager cannot read the published repository or its key (unreachable,
   * unsigned, signed by another key). */
  RepositoryUnavailable: FailureType.RepositoryUnavailable,
  /** Going back to a lower version without `allowDowngrade`. */
  DowngradeRefused: FailureType.DowngradeRefused,
  /** The host cannot be reached (SSH connection refused, SSM undeliverable). Retryable. */
  HostUnreachable: 'HostUnreachable',
  /** The SSH host key is unknown, changed or revoked: never connect, never retry. */
  HostKeyRejected: FailureType.HostKeyRejected,
  /** The host answered, but not in a way that tells anything (no version marker in its output). */
  HostUnreadable: FailureType.HostUnreadable,
  /** A value that would reach a host's shell does not match its strict pattern. */
  BadInput: FailureType.BadInput,
  /** The install command failed for another reason; details: CommandFailureDetails. */
  CommandFailed: FailureType.CommandFailed,
  /** A host's tags or the fleet's settings cannot work (unknown executor, root outside hostsDir). */
  BadConfig: FailureType.BadConfig,
} as const;

export type FleetFailureType = (typeof FleetFailure)[keyof typeof FleetFailure];

export function fleetFailure(
  type: FleetFailureType,
  message: string,
  opts: { retryable?: boolean; details?: unknown } = {},
): ApplicationFailure {
  return ApplicationFailure.create({
    type,
    message,
    nonRetryable: !opts.retryable,
    details: opts.details === undefined ? undefined : [opts.details],
  });
}
