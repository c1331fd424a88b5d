// Pure helpers shared by the pipeline and its stages (deterministic: no I/O).
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowFailure,
  getExternalWorkflowHandle,
  TemporalFailure,
  workflowInfo,
} from '@temporalio/workflow';
import type { CommandFailureDetails } from '../common/failures';
import type { RepositorySpec } from '../common/types';
import { stageNoteSignal } from './messages';

/** Tells the parent pipeline (if any) what this stage waits for (`undefined`: no longer); the
 * pipeline shows it in its status. Never fails the stage. */
export async function tellParent(text: string | undefined): Promise<void> {
  const parent = workflowInfo().parent;
  if (!parent) return;
  await CancellationScope.nonCancellable(() =>
    getExternalWorkflowHandle(parent.workflowId)
      .signal(stageNoteSignal, { workflowId: workflowInfo().workflowId, ...(text ? { note: text } : {}) })
      .catch(() => undefined),
  );
}

/** CONVEYOR_* variables of a step. Webhook values (branch, sha) reach commands only this way. */
export function stepEnvFor(input: { repository: RepositorySpec; branch: string; sha: string }, distro: string) {
  return {
    CONVEYOR_REPOSITORY: input.repository.name,
    CONVEYOR_BRANCH: input.branch,
    CONVEYOR_COMMIT: input.sha,
    CONVEYOR_DISTRO: distro,
    CONVEYOR_CHANNEL: input.repository.channel,
  };
}

/** The innermost ApplicationFailure of a chain (child → activity → application). */
export function rootApplicationFailure(err: unknown): ApplicationFailure | undefined {
  let cur: unknown = err;
  while (cur instanceof TemporalFailure) {
    if (cur instanceof ApplicationFailure) return cur;
    if (cur instanceof ActivityFailure || cur instanceof ChildWorkflowFailure) cur = cur.cause;
    else cur = cur.cause;
  }
  return undefined;
}

/** What a failed step activity tells us, whatever shape the failure took. */
export function commandFailureOf(err: unknown, step: string): CommandFailureDetails {
  const app = rootApplicationFailure(err);
  const details = app?.details?.[0] as Partial<CommandFailureDetails> | undefined;
  if (details && typeof details === 'object' && 'logKey' in details) {
    return {
      step,
      exitCode: details.exitCode ?? null,
      signal: details.signal ?? null,
      logKey: details.logKey ?? '',
      tail: details.tail ?? '',
      ...(details.reason ? { reason: details.reason } : {}),
    };
  }
  return { step, exitCode: null, signal: null, logKey: '', tail: app?.message ?? messageOf(err) };
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
