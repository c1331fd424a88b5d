// What a chat message of a run says, as Slack Block Kit (https://api.slack.com/block-kit) with a
// plain-text fallback for notifications and for Slack-compatible webhooks that ignore blocks
// (Mattermost, Rocket.Chat). Pure: no I/O, tested on its own. Values from a push (branch, commit
// title, log tails) are escaped as Slack asks (&, <, >), so a commit title cannot ping
// `<!channel>` or forge a link.
import { CHAT_BUTTONS, type ChatEvent, type ChatRunFacts } from '../../common/chat';

export interface SlackMessage {
  text: string;
  blocks: unknown[];
}

const HEADLINE: Record<ChatEvent['kind'], { icon: string; say: (e: ChatEvent) => string }> = {
  started: { icon: ':arrow_forward:', say: () => 'run started' },
  'stage-failed': {
    icon: ':x:',
    say: (e) => `stage ${e.stage ?? '?'} failed${e.attempt && e.attempt > 1 ? ` (attempt ${e.attempt})` : ''}`,
  },
  'awaiting-approval': { icon: ':raised_hand:', say: () => 'waiting for approval to promote to production' },
  succeeded: { icon: ':white_check_mark:', say: () => 'succeeded' },
  superseded: { icon: ':fast_forward:', say: () => 'superseded' },
  aborted: { icon: ':no_entry_sign:', say: () => 'aborted' },
  failed: { icon: ':rotating_light:', say: () => 'failed' },
  rejected: { icon: ':no_entry:', say: () => 'rejected' },
  expired: { icon: ':hourglass:', say: () => 'approval expired' },
};

/** Slack's mrkdwn control characters. */
export function escapeMrkdwn(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The last lines of a log, as many as fit in a section (Slack allows 3,000 characters). */
function tailBlock(tail: string, max = 2500): string {
  const lines = tail.trimEnd().split('\n').slice(-40);
  let text = lines.join('\n');
  if (text.length > max) text = `…${text.slice(-max)}`;
  // Three backticks in a log would end the code block early.
  return '```' + escapeMrkdwn(text).replace(/```/g, "'''") + '```';
}

export function slackMessage(run: ChatRunFacts, event: ChatEvent): SlackMessage {
  const h = HEADLINE[event.kind];
  const short = run.sha.slice(0, 7);
  const build = event.build !== undefined ? ` · build ${event.build}` : '';
  const version = event.version ? ` (${escapeMrkdwn(event.version)})` : '';
  const repo = run.runUrl ? `<${run.runUrl}|${escapeMrkdwn(run.repository)}>` : escapeMrkdwn(run.repository);
  const headline = `${h.icon} *${repo}* \`${escapeMrkdwn(run.branch)}\`: ${h.say(event)}`;
  const commit = `\`${short}\` ${escapeMrkdwn(run.title)}${build}${version}`;
  const blocks: unknown[] = [{ type: 'section', text: { type: 'mrkdwn', text: `${headline}\n${commit}` } }];
  if (event.kind === 'stage-failed') {
    const error = event.error ? escapeMrkdwn(event.error.slice(0, 500)) : 'failed';
    blocks.push({ type: 'section', text: { type: 'mrkdwn', text: `*${escapeMrkdwn(event.stage ?? '')}*: ${error}` } });
    if (event.tail) blocks.push({ type: 'section', text: { type: 'mrkdwn', text: tailBlock(event.tail) } });
    blocks.push({
      type: 'context',
      elements: [
        {
          type: 'mrkdwn',
          text: `retry: \`/conveyor retry ${escapeMrkdwn(run.workflowId)}\` · abort: \`/conveyor abort ${escapeMrkdwn(run.workflowId)}\``,
        },
      ],
    });
  } else if (event.reason) {
    blocks.push({
      type: 'section',
      text: { type: 'mrkdwn', text: escapeMrkdwn(event.reason.slice(0, 1000)) },
    });
  }
  if (event.kind === 'awaiting-approval') {
    blocks.push({
      type: 'actions',
      block_id: 'conveyor_approval',
      elements: [
        {
          type: 'button',
          action_id: CHAT_BUTTONS.approve,
          text: { type: 'plain_text', text: 'Approve' },
          style: 'primary',
          value: run.workflowId,
        },
        {
          type: 'button',
          action_id: CHAT_BUTTONS.reject,
          text: { type: 'plain_text', text: 'Reject' },
          style: 'danger',
          value: run.workflowId,
        },
      ],
    });
  }
  // Every message carries the link: webhook messages cannot thread, and a thread reply read from a
  // notification should not need its parent.
  blocks.push({
    type: 'context',
    elements: [
      {
        type: 'mrkdwn',
        text: run.runUrl ? `<${run.runUrl}|${escapeMrkdwn(run.workflowId)}>` : escapeMrkdwn(run.workflowId),
      },
    ],
  });
  const text =
    `${run.repository} ${run.branch} ${short}: ${h.say(event)}${build}` +
    (event.kind === 'stage-failed' && event.error ? `: ${event.error.slice(0, 200)}` : '') +
    (run.runUrl ? ` ${run.runUrl}` : ` ${run.workflowId}`);
  return { text: escapeMrkdwn(text), blocks };
}
