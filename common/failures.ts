// Failure types: activities throw ApplicationFailure with one of these `type`s, workflows branch
// on `failure.cause.type`. Never branch on error class names or messages.

export const FailureType = {
  /** A configured command exited non-zero. Not retried: the same commit fails the same way. */
  CommandFailed: 'CommandFailed',
  /** The repository could not be cloned or the sha is not in it. */
  CheckoutFailed: 'CheckoutFailed',
  /** A stage ended in failure; details carry the per-step results. */
  StageFailed: 'StageFailed',
  /** The configuration names something that does not exist (repository, step, distro). */
  BadConfig: 'BadConfig',
} as const;

export type FailureTypeName = (typeof FailureType)[keyof typeof FailureType];

/** Details of a CommandFailed failure: enough for an operator to act without opening the logs. */
export interface CommandFailureDetails {
  step: string;
  exitCode: number | null;
  signal: string | null;
  logKey: string;
  tail: string;
}
