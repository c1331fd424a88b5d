// Posts one chat message of a run (activities/chat/slack-message.ts says what it shows): with a bot
// token through chat.postMessage (threaded under the run's first message in the channel), or to
// an incoming webhook. A message is a courtesy, never a gate: this activity NEVER throws, it
// answers `sent: false` with the reason. Rate limits (HTTP 429, or `ratelimited`) are waited out
// as Slack's Retry-After asks (https://api.slack.com/apis/rate-limits), a bounded number of times,
// heartbeating all along.
//
// Credentials arrive by env var NAME only and are read here, at each call: a token or webhook URL
// never enters a workflow input, a history or a log line. A name is honoured only when this
// worker's own conveyor.yml names it (chat.slack.botTokenEnv, a notify rule's webhookUrlEnv), and
// the API URL is this worker's config, not the input's: whoever can start a workflow cannot make
// the orchestrator send another of its secrets (the signing key's env var) anywhere.
import { activityContext, activityLogger, causeOf, keepAlive, redact, sleep, type QuietLogger } from '../best-effort';
import type { ChatRoute, SendChatMessageInput, SendChatMessageResult } from '../../common/chat';
import type { Env } from '../../config/conveyor';
import { slackMessage } from './slack-message';

export type ChatLogger = QuietLogger;

export interface ChatActivityDeps {
  /** Slack Web API base URL (config chat.slack.apiUrl). */
  apiUrl: string;
  /** The env var names config allows as chat credentials. */
  allowedEnv: ReadonlySet<string>;
  env: Env;
  logger?: ChatLogger;
  /** Requests per message at most, retries included (default 5). */
  maxAttempts?: number;
  /** A rate limit that lifts later than this is not waited for (default 60 s). */
  maxWaitMs?: number;
  /** Time limit of one HTTP request (default 10 s). */
  requestTimeoutMs?: number;
}

interface Answer {
  status: number;
  retryAfter?: string;
  body: string;
}

export function createChatActivities(deps: ChatActivityDeps) {
  const maxAttempts = deps.maxAttempts ?? 5;
  const maxWaitMs = deps.maxWaitMs ?? 60_000;
  const requestTimeoutMs = deps.requestTimeoutMs ?? 10_000;
  const apiUrl = deps.apiUrl.replace(/\/+$/, '');

  async function sendChatMessage(input: SendChatMessageInput): Promise<SendChatMessageResult> {
    const log = deps.logger ?? activityLogger();
    const where = { workflowId: input?.run?.workflowId, event: input?.event?.kind, via: input?.route?.via?.kind };
    let secret: string | undefined;
    // Alive while it waits on Slack or on a Retry-After (keepAlive): a message whose worker died
    // is given up in seconds, not at the end of the notifier's start-to-close timeout.
    const stopBeating = keepAlive();
    try {
      const credential = credentialOf(input?.route);
      if ('problem' in credential) return giveUp(log, where, credential.problem);
      secret = credential.value;
      const message = slackMessage(input.run, input.event);
      const request: { url: string; headers: Record<string, string>; body: unknown } =
        input.route.via.kind === 'bot'
          ? {
              url: `${apiUrl}/chat.postMessage`,
              headers: { authorization: `Bearer ${secret}` },
              body: {
                channel: input.route.channel,
                ...message,
                unfurl_links: false,
                ...(input.threadTs
                  ? {
                      thread_ts: input.threadTs,
                      // What needs a person is shown in the channel too, not only in the thread.
                      reply_broadcast: input.event.kind === 'stage-failed' || input.event.kind === 'awaiting-approval',
                    }
                  : {}),
              },
            }
          : { url: secret, headers: {}, body: message };
      const cancelled = activityContext()?.cancellationSignal;
      for (let attempt = 1; ; attempt++) {
        let answer: Answer;
        try {
          answer = await post(request.url, request.headers, request.body, cancelled);
        } catch (err) {
          if (cancelled?.aborted) return giveUp(log, where, 'cancelled');
          const reason = `Slack unreachable: ${causeOf(err)}`;
          if (attempt >= maxAttempts) return giveUp(log, where, redact(reason, secret));
          await sleep(1000 * 2 ** (attempt - 1), cancelled);
          continue;
        }
        const verdict = judge(answer, input.route);
        if (verdict.ok) {
          log.info('chat message sent', { ...where, attempt });
          return { sent: true, ...(verdict.ts ? { ts: verdict.ts } : {}) };
        }
        if (verdict.waitMs === undefined || attempt >= maxAttempts) return giveUp(log, where, verdict.reason);
        if (verdict.waitMs > maxWaitMs) {
          return giveUp(log, where, `${verdict.reason}; not waiting ${Math.ceil(verdict.waitMs / 1000)} s`);
        }
        log.warn('chat message not sent yet; retrying', { ...where, attempt, waitMs: verdict.waitMs });
        await sleep(verdict.waitMs, cancelled);
        if (cancelled?.aborted) return giveUp(log, where, 'cancelled');
      }
    } catch (err) {
      // Never thrown: a chat message must not fail anything.
      return giveUp(log, where, redact(`unexpected: ${(err as Error)?.message ?? String(err)}`, secret));
    } finally {
      stopBeating();
    }
  }

  function credentialOf(route: ChatRoute | undefined): { value: string } | { problem: string } {
    const name =
      route?.via?.kind === 'bot' ? route.via.tokenEnv : route?.via?.kind === 'webhook' ? route.via.urlEnv : '';
    if (!name) return { problem: 'invalid route' };
    if (!deps.allowedEnv.has(name)) {
      return { problem: `${name} is not a chat credential of this worker's conveyor.yml: not read` };
    }
    const value = deps.env[name];
    if (!value) return { problem: `${name} is not set on the orchestrator` };
    if (route?.via.kind === 'bot' && !route.channel) return { problem: 'a bot route needs a channel' };
    if (route?.via.kind === 'webhook' && !/^https?:\/\/\S+$/.test(value)) {
      return { problem: `${name} does not hold an http(s) URL` };
    }
    return { value };
  }

  async function post(
    url: string,
    headers: Record<string, string>,
    body: unknown,
    cancelled: AbortSignal | undefined,
  ): Promise<Answer> {
    const timeout = AbortSignal.timeout(requestTimeoutMs);
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json; charset=utf-8', ...headers },
      body: JSON.stringify(body),
      signal: cancelled ? AbortSignal.any([cancelled, timeout]) : timeout,
      redirect: 'error',
    });
    const text = (await res.text()).slice(0, 4096);
    return { status: res.status, retryAfter: res.headers.get('retry-after') ?? undefined, body: text };
  }

  return { sendChatMessage };
}

/** Sent, or whether and when to try again and how to say what happened. */
function judge(
  a: Answer,
  route: ChatRoute,
): { ok: true; ts?: string } | { ok: false; waitMs?: number; reason: string } {
  if (a.status === 429) {
    const s = Number(a.retryAfter);
    const waitMs = a.retryAfter !== undefined && Number.isFinite(s) && s >= 0 ? s * 1000 : 30_000;
    return { ok: false, waitMs, reason: 'rate limited by Slack (429)' };
  }
  if (a.status >= 500) return { ok: false, waitMs: 2000, reason: `Slack answered ${a.status}` };
  if (route.via.kind === 'webhook') {
    // Incoming webhooks answer 200 `ok`, or 4xx with a plain-text reason (no_text, channel_not_found…).
    if (a.status >= 200 && a.status < 300) return { ok: true };
    return { ok: false, reason: `the webhook answered ${a.status}: ${a.body.slice(0, 100)}` };
  }
  let parsed: { ok?: unknown; ts?: unknown; error?: unknown } = {};
  try {
    parsed = JSON.parse(a.body) as typeof parsed;
  } catch {
    return { ok: false, reason: `Slack answered ${a.status} without JSON` };
  }
  if (parsed.ok === true) return { ok: true, ...(typeof parsed.ts === 'string' ? { ts: parsed.ts } : {}) };
  const error = typeof parsed.error === 'string' ? parsed.error.slice(0, 100) : 'unknown error';
  if (error === 'ratelimited') return { ok: false, waitMs: 30_000, reason: 'rate limited by Slack (ratelimited)' };
  const hint: Record<string, string> = {
    not_in_channel: 'invite the app to the channel (/invite @Conveyor)',
    channel_not_found: 'check the channel of the notify rule',
    invalid_auth: 'the bot token was rejected',
    missing_scope: 'the app needs the chat:write scope',
  };
  return { ok: false, reason: `Slack refused the message: ${error}${hint[error] ? ` (${hint[error]})` : ''}` };
}

function giveUp(log: ChatLogger, where: Record<string, unknown>, reason: string): SendChatMessageResult {
  log.warn('chat message not sent', { ...where, reason });
  return { sent: false, reason };
}
