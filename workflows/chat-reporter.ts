// The pipeline's side of chat notifications (conveyor.yml `notify`, README "ChatOps"): it starts
// the run's notifier child (workflows/chat-notifier.ts) and tells it what happens. Workflow code:
// deterministic, and every command it adds is behind the `chat-notifications` patch.
import { CancellationScope, patched, startChild, workflowInfo } from '@temporalio/workflow';
import { chatNotifierId, type ChatEvent } from '../common/chat';
import type { PipelineInput } from '../common/types';
import { chatNotifier } from './chat-notifier';
import { chatEventSignal } from './messages';

/** Marks runs that start a chat notifier and signal it (new commands: older histories lack them). */
export const CHAT_PATCH = 'chat-notifications';

export type ChatReporter = NonNullable<ReturnType<typeof chatReporter>>;

/**
 * Tells the run's chat notifier (`<id>/chat`, workflows/chat-notifier.ts) what happened, off the
 * critical path: the notifier is started with ParentClosePolicy ABANDON and posts to Slack on its
 * own time, so a slow or failing chat never holds or fails the chain. Events are signalled one
 * after the other (each waits for the previous signal's delivery, not for Slack), and numbered so
 * the notifier posts them in order. `flush` waits for the signals only: a Temporal round trip.
 * Undefined when the run has no routes, and in histories recorded before ChatOps.
 */
export function chatReporter(input: PipelineInput) {
  const routes = input.repository.notify ?? [];
  if (routes.length === 0 || !patched(CHAT_PATCH)) return undefined;
  const { workflowId, namespace } = workflowInfo();
  const web = input.repository.webUiUrl;
  const idleSeconds =
    Math.max(input.repository.operatorWindowSeconds, input.repository.approvalTimeoutSeconds ?? 3 * 86400) + 86400;
  const notifier = CancellationScope.nonCancellable(() =>
    startChild(chatNotifier, {
      workflowId: chatNotifierId(workflowId),
      parentClosePolicy: 'ABANDON',
      args: [
        {
          run: {
            workflowId,
            repository: input.repository.name,
            branch: input.branch,
            sha: input.sha,
            title: (input.commit.message.split('\n')[0] ?? '').slice(0, 200),
            ...(web
              ? {
                  runUrl: `${web}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`,
                }
              : {}),
          },
          routes,
          idleSeconds,
        },
      ],
      staticSummary: `chat notifications of ${input.repository.name} ${input.branch} @ ${input.sha.slice(0, 12)}`,
    }),
  ).catch(() => undefined);
  let seq = 0;
  let last: Promise<unknown> = notifier;
  return {
    emit(kind: ChatEvent['kind'], facts: Omit<ChatEvent, 'seq' | 'kind'> = {}): void {
      const event: ChatEvent = { seq: seq++, kind, ...facts };
      if (event.tail) event.tail = event.tail.slice(-3000);
      last = last.then(() =>
        CancellationScope.nonCancellable(async () => {
          const handle = await notifier;
          await handle?.signal(chatEventSignal, event);
        }).catch(() => undefined),
      );
    },
    flush(): Promise<unknown> {
      return CancellationScope.nonCancellable(() => last);
    },
  };
}
