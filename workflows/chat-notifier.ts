// The chat notifier of one pipeline run (`<pipeline id>/chat`): the pipeline signals what happened
// (run started, a stage failed, awaiting approval, how it ended) and this workflow posts each event
// to every route that asked for it, in order, threading a bot route's messages under the run's
// first message in that channel.
//
// Why a child workflow of its own (started with ParentClosePolicy ABANDON) and not activities of
// the pipeline: a chat message must never fail or delay the chain. Slack may rate-limit for
// minutes (429 Retry-After) or be down; activities the pipeline ran itself would either hold its
// end (waiting for the last message) or be dropped when it completes (a scheduled activity of a
// closed workflow never runs, so "succeeded" would be the message most often lost). Here the
// pipeline only sends signals, which Temporal takes without waiting for Slack, and the notifier
// outlives it for as long as the messages take. It keeps the thread `ts` per route in its own
// state, so ordering and threading need no store. Its activity never throws (a message that
// cannot be sent is logged and skipped), so nothing here can fail either.
import { condition, log, proxyActivities, setHandler } from '@temporalio/workflow';
import type { OrchestratorActivities } from '../activities';
import type { ChatEvent, ChatNotifierInput } from '../common/chat';
import { chatEventSignal } from './messages';

const TERMINAL = new Set<ChatEvent['kind']>(['succeeded', 'superseded', 'aborted', 'failed', 'rejected', 'expired']);

// The activity waits out rate limits itself (bounded, well inside this timeout) and answers
// `sent: false` instead of throwing; one attempt, so a message is never posted twice by a retry.
// It heartbeats every 5 s: a message whose worker died is skipped after 30 s instead of holding
// the messages after it for the whole start-to-close timeout.
const chat = proxyActivities<OrchestratorActivities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { maximumAttempts: 1 },
});

export async function chatNotifier(input: ChatNotifierInput): Promise<{ sent: number; skipped: number }> {
  const pending = new Map<number, ChatEvent>();
  setHandler(chatEventSignal, (e) => {
    if (Number.isInteger(e?.seq) && e.seq >= 0) pending.set(e.seq, e);
  });
  const threads = new Map<number, string>();
  let next = 0;
  let sent = 0;
  let skipped = 0;
  for (;;) {
    if (!(await condition(() => pending.has(next), `${input.idleSeconds} seconds`))) break;
    const event = pending.get(next)!;
    pending.delete(next);
    next += 1;
    for (const [i, route] of input.routes.entries()) {
      if (!route.events.includes(event.kind)) continue;
      const r = await chat
        .sendChatMessage({ route, run: input.run, event, threadTs: threads.get(i) })
        .catch((err: unknown) => ({ sent: false, ts: undefined, reason: String(err) }));
      if (r.sent) sent += 1;
      else {
        skipped += 1;
        log.warn('chat message not sent', { event: event.kind, route: i, reason: r.reason });
      }
      if (r.ts && route.via.kind === 'bot' && !threads.has(i)) threads.set(i, r.ts);
    }
    if (TERMINAL.has(event.kind)) break;
  }
  return { sent, skipped };
}
