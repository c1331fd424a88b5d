// POST /webhooks/slack: Slack's slash commands (`/conveyor …`) and interactive button payloads
// (Approve / Reject under an approval message). Cheap checks first (configured, content type,
// headers, timestamp), then the body read within the GitHub intake's bounds (the per-request
// limit and the listener's budget of unverified bytes, intake-guard.ts), then Slack's signature
// over the exact bytes; nothing of a body is parsed or logged before that. The verified payload is
// untrusted still: every field is checked before use (user ID, team, command text, button value,
// response_url), then the sender's right from chat.access, then the command runs.
//
// Slack wants an answer within 3 seconds. A command's answer (done, or refused and why) usually
// comes back from the run's Update well within that; when it does not (no worker answering yet,
// a slow visibility query), the request is answered "working on it" and the answer follows on the
// request's response_url. Button clicks are always answered on response_url: Slack ignores the
// body of a block_actions answer.
import type http from 'node:http';
import type pino from 'pino';
import { CHAT_BUTTONS } from '../../common/chat';
import { SLACK_USER_ID, findRepository, type ConveyorConfig } from '../../config/conveyor';
import { HttpError, readBody, type BodyBudget } from '../read-body';
import { header, json, type Reply } from '../reply';
import type { TemporalGate } from '../temporal-gate';
import { readableRepositories, refusal } from './access';
import { parseCommand, parseTarget, rightOf, type Command } from './parse-command';
import { runCommand, type ChatAnswer } from './run-command';
import { checkSlackHeaders, verifySlackSignature } from './verify-signature';

/** Slack's payloads are small (a button payload carries its message: a few KB); GitHub's limit is not needed. */
export const SLACK_MAX_BODY_BYTES = 1024 * 1024;

export interface SlackDeps {
  config: ConveyorConfig;
  /** The app's signing secret (env var chat.slack.signingSecretEnv); unset: every request refused. */
  secret: string | undefined;
  /** The GitHub intake's per-request limit (api.maxBodyBytes); the smaller of it and 1 MB applies. */
  maxBodyBytes: number;
  gate: TemporalGate;
  logger: pino.Logger;
  budget?: BodyBudget & { release(req: http.IncomingMessage): void };
  verified?: (req: http.IncomingMessage) => void;
  /** Answer in the request within this; later answers go to response_url (default 2500 ms). */
  ackWithinMs?: number;
  /** Time limit of each Temporal call of a command (default 10 s). */
  commandTimeoutMs?: number;
  /** Seconds since the epoch (tests). */
  now?: () => number;
}

const TEAM_ID = /^T[A-Z0-9]{2,20}$/;
const USER_NAME = /^[A-Za-z0-9._-]{1,80}$/;

interface Request {
  user: string;
  userName?: string;
  team?: string;
  responseUrl?: string;
  command: Command;
  /** A button click: every answer goes to response_url. */
  button: boolean;
  /** The command text did not parse: the answer is why. */
  invalid?: string;
}

export function createSlackHandler(deps: SlackDeps): (req: http.IncomingMessage) => Promise<Reply> {
  const ackWithinMs = deps.ackWithinMs ?? 2500;
  const limit = Math.min(deps.maxBodyBytes, SLACK_MAX_BODY_BYTES);

  return async function handleSlack(req) {
    const chat = deps.config.chat;
    if (!chat) return json(404, { error: 'ChatOps is not configured: add chat to conveyor.yml (README "ChatOps")' });
    if (!deps.secret) {
      return json(503, {
        error: `no Slack signing secret: set ${chat.slack.signingSecretEnv} (chat.slack.signingSecretEnv) for the API`,
      });
    }
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (type !== 'application/x-www-form-urlencoded') {
      throw new HttpError(415, `content type ${type || '(none)'} is not accepted: Slack sends form-encoded requests`);
    }
    const timestamp = header(req, 'x-slack-request-timestamp');
    const signature = header(req, 'x-slack-signature');
    let body: Buffer;
    try {
      // Stale or unsigned requests are refused before their body is read.
      const early = checkSlackHeaders(timestamp, signature, deps.now?.());
      if (!early.ok) return refuseUnsigned(early.reason);
      body = await readBody(req, limit, deps.budget);
    } finally {
      deps.budget?.release(req);
    }
    const verdict = verifySlackSignature({ secret: deps.secret, timestamp, signature, body, now: deps.now?.() });
    if (!verdict.ok) return refuseUnsigned(verdict.reason);
    deps.verified?.(req);

    const parsed = parseRequest(body);
    if ('problem' in parsed) {
      deps.logger.warn({ problem: parsed.problem }, 'signed Slack request refused: malformed');
      return json(400, { error: parsed.problem });
    }
    const r = parsed;
    const log = deps.logger.child({ slackUser: r.user, action: r.command.action });
    const answer = (a: ChatAnswer) => respond(r, a, log);
    if (chat.slack.teamId && r.team !== chat.slack.teamId) {
      log.warn({ team: r.team }, 'Slack request from another workspace refused');
      return answer({ text: `refused: this Conveyor answers workspace ${chat.slack.teamId} only`, inChannel: false });
    }
    if (r.invalid) return answer({ text: r.invalid, inChannel: false });
    const right = rightOf(r.command);
    const repository = repositoryOf(r.command);
    if (right && repository) {
      if (!findRepository(deps.config, repository)) {
        return answer({ text: `refused: repository ${repository} is not configured`, inChannel: false });
      }
      const why = refusal(chat, r.user, repository, right);
      if (why) {
        log.warn({ repository, reason: why }, 'chat action refused: no right');
        return answer({ text: why, inChannel: false });
      }
    } else if (right) {
      // `list` of every repository the sender may read; nobody unknown gets even that.
      const why = refusal(chat, r.user, '*', right);
      if (why && why.includes('not in chat.access')) return answer({ text: why, inChannel: false });
    }
    const by = `slack:${r.user}${r.userName ? ` (${r.userName})` : ''}`;
    const work = runCommand(
      {
        config: deps.config,
        gate: deps.gate,
        logger: log,
        by,
        readable: readableRepositories(
          chat,
          r.user,
          deps.config.repositories.map((x) => x.name),
        ),
        timeoutMs: deps.commandTimeoutMs ?? 10_000,
      },
      r.command,
    );
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ackWithinMs)));
    const early = await Promise.race([work, late]);
    clearTimeout(timer);
    if (early) return answer(early);
    void work.then((a) => followUp(r, a, log));
    return r.button
      ? json(200, {})
      : json(200, { response_type: 'ephemeral', text: `working on ${r.command.action}: the answer follows here` });
  };

  function refuseUnsigned(reason: string): Reply {
    deps.logger.warn({ reason }, 'Slack request refused: signature');
    return json(401, { error: reason }, 'unauthorized');
  }

  /** The answer in the HTTP response (slash commands), or on response_url (buttons). */
  function respond(r: Request, a: ChatAnswer, log: pino.Logger): Reply {
    if (!r.button) return json(200, { response_type: a.inChannel ? 'in_channel' : 'ephemeral', text: a.text });
    void followUp(r, a, log);
    return json(200, {});
  }

  async function followUp(r: Request, a: ChatAnswer, log: pino.Logger): Promise<void> {
    const url = r.responseUrl;
    const prefixes = deps.config.chat?.slack.responseUrlPrefixes ?? [];
    if (!url || !prefixes.some((p) => url.startsWith(p))) {
      log.warn(
        { responseUrl: url?.slice(0, 200) },
        'no follow-up: response_url is not under chat.slack.responseUrlPrefixes',
      );
      return;
    }
    const body = JSON.stringify({
      response_type: a.inChannel ? 'in_channel' : 'ephemeral',
      replace_original: false,
      text: a.text,
    });
    for (let attempt = 1; attempt <= 3; attempt++) {
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json; charset=utf-8' },
          body,
          signal: AbortSignal.timeout(10_000),
          redirect: 'error',
        });
        await res.arrayBuffer();
        if (res.status !== 429) {
          if (!res.ok) log.warn({ status: res.status }, 'follow-up refused by Slack');
          return;
        }
        const wait = Math.min(10, Number(res.headers.get('retry-after')) || 1);
        await new Promise((resolve) => setTimeout(resolve, wait * 1000));
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'follow-up not delivered');
        return;
      }
    }
  }
}

function repositoryOf(c: Command): string | undefined {
  if (c.action === 'help') return undefined;
  if (c.action === 'list') return c.repository;
  return c.target.repository;
}

/** The verified form body as a request, every field checked; or what was wrong. */
export function parseRequest(body: Buffer): Request | { problem: string } {
  const form = new URLSearchParams(body.toString('utf8'));
  const payload = form.get('payload');
  if (payload !== null) return parseInteraction(payload);
  const user = form.get('user_id') ?? '';
  if (!SLACK_USER_ID.test(user)) return { problem: 'user_id is missing or not a Slack user ID' };
  const command = form.get('command') ?? '';
  if (!/^\/[a-z0-9_-]{1,32}$/.test(command)) return { problem: 'command is missing or malformed' };
  const parsed = parseCommand(form.get('text') ?? '');
  const base = {
    user,
    ...optional('userName', form.get('user_name'), USER_NAME),
    ...optional('team', form.get('team_id'), TEAM_ID),
    ...optional('responseUrl', form.get('response_url'), /^https?:\/\/\S{1,2000}$/),
    button: false,
  };
  // A command that does not parse is answered with the reason, like any refusal.
  return parsed.ok
    ? { ...base, command: parsed.command }
    : { ...base, command: { action: 'help' }, invalid: parsed.reason };
}

function parseInteraction(text: string): Request | { problem: string } {
  let p: unknown;
  try {
    p = JSON.parse(text);
  } catch {
    return { problem: 'payload is not JSON' };
  }
  const o = p as {
    type?: unknown;
    user?: { id?: unknown; username?: unknown; team_id?: unknown };
    team?: { id?: unknown } | null;
    actions?: { action_id?: unknown; value?: unknown }[];
    response_url?: unknown;
  };
  if (!o || typeof o !== 'object' || o.type !== 'block_actions')
    return { problem: 'only block_actions payloads are handled' };
  const user = typeof o.user?.id === 'string' ? o.user.id : '';
  if (!SLACK_USER_ID.test(user)) return { problem: 'user.id is missing or not a Slack user ID' };
  const action = Array.isArray(o.actions) ? o.actions[0] : undefined;
  const id = action?.action_id;
  if (id !== CHAT_BUTTONS.approve && id !== CHAT_BUTTONS.reject) return { problem: 'unknown action' };
  const target = typeof action?.value === 'string' ? parseTarget(action.value) : undefined;
  if (!target?.ok || target.target.kind !== 'run') return { problem: 'the button does not name a run' };
  const command: Command =
    id === CHAT_BUTTONS.approve
      ? { action: 'approve', target: target.target, comment: 'approved with the button in Slack' }
      : { action: 'reject', target: target.target, reason: 'rejected with the button in Slack' };
  return {
    user,
    ...optional('userName', o.user?.username, USER_NAME),
    ...optional('team', o.team?.id ?? o.user?.team_id, TEAM_ID),
    ...optional('responseUrl', o.response_url, /^https?:\/\/\S{1,2000}$/),
    command,
    button: true,
  };
}

function optional<K extends string>(key: K, value: unknown, pattern: RegExp): Partial<Record<K, string>> {
  return typeof value === 'string' && pattern.test(value) ? ({ [key]: value } as Record<K, string>) : {};
}
