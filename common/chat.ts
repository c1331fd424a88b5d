// ChatOps types shared by config, the pipeline, the chat notifier workflow and its activity
// (pure: importable from workflows). A route names its credential by env var only: the token or
// the incoming-webhook URL (itself a secret) never enters a workflow input, a history or a log.

/** What a run tells a channel about, in the order a run meets them. */
export const CHAT_EVENTS = [
  'started',
  'stage-failed',
  'awaiting-approval',
  'succeeded',
  'superseded',
  'aborted',
  'failed',
  'rejected',
  'expired',
] as const;
export type ChatEventKind = (typeof CHAT_EVENTS)[number];

/** The operator actions a chat user may be granted per repository (`status` covers `list`). */
export const CHAT_ACTIONS = ['status', 'approve', 'reject', 'retry', 'abort'] as const;
export type ChatAction = (typeof CHAT_ACTIONS)[number];

/** One notification route of a run, resolved from conveyor.yml at start (RepositorySpec.notify). */
export interface ChatRoute {
  events: ChatEventKind[];
  /** Slack channel ID or name; required with a bot token, optional (ignored) with a webhook. */
  channel?: string;
  /** Bot token (chat.postMessage; later messages thread under the first) or incoming webhook. */
  via: { kind: 'bot'; tokenEnv: string } | { kind: 'webhook'; urlEnv: string };
}

/** What every message of a run shows. */
export interface ChatRunFacts {
  workflowId: string;
  repository: string;
  branch: string;
  sha: string;
  /** First line of the commit message. */
  title: string;
  /** The run in the Temporal Web UI, when the config names one. */
  runUrl?: string;
}

/** One thing that happened to a run; `seq` orders them (signals may arrive out of order). */
export interface ChatEvent {
  seq: number;
  kind: ChatEventKind;
  build?: number;
  version?: string;
  /** stage-failed: `package/el9`, its attempt, error and log tail. */
  stage?: string;
  attempt?: number;
  error?: string;
  tail?: string;
  logKeys?: string[];
  /** Terminal events: why (aborted by …, rejected by …, superseded by …). */
  reason?: string;
}

export interface ChatNotifierInput {
  run: ChatRunFacts;
  routes: ChatRoute[];
  /** The notifier ends after this long without an event (its pipeline vanished without a last word). */
  idleSeconds: number;
}

export interface SendChatMessageInput {
  route: ChatRoute;
  run: ChatRunFacts;
  event: ChatEvent;
  /** Bot routes: the `ts` of the run's first message in this channel, to thread under. */
  threadTs?: string;
}

export interface SendChatMessageResult {
  sent: boolean;
  /** Bot routes: the message's `ts` (the first one becomes the thread). */
  ts?: string;
  /** Why it was not sent (never a secret). */
  reason?: string;
}

/** The notifier child of a pipeline run. */
export function chatNotifierId(pipelineWorkflowId: string): string {
  return `${pipelineWorkflowId}/chat`;
}

/** Button action IDs of approval messages; the button's value is the run's workflow ID. */
export const CHAT_BUTTONS = { approve: 'conveyor_approve', reject: 'conveyor_reject' } as const;
