// Commit statuses on GitHub (`conveyor/test`, `conveyor/deploy`, …) so a pull request or commit
// shows where its pipeline is. A status is a courtesy, never a gate: this activity NEVER throws,
// it answers `reported: false` with the reason, so a GitHub outage, a missing token or a rate
// limit can never fail a pipeline. Rate limits (429, or 403 with retry-after / an exhausted
// x-ratelimit-remaining) are waited out a bounded number of times, as GitHub asks
// (https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api).
// The token is read per call and never logged or put into a reason.
import { activityContext, activityLogger, causeOf, keepAlive, redact, sleep, type QuietLogger } from '../best-effort';
import type { Octokit } from '@octokit/rest';

export type CommitState = 'pending' | 'success' | 'failure' | 'error';

export interface CommitStatusInput {
  /** GitHub full_name, owner/repo. */
  repository: string;
  sha: string;
  /** The status's name on GitHub, e.g. `conveyor/test`. */
  context: string;
  state: CommitState;
  /** Shown beside the status; GitHub keeps 140 characters. */
  description: string;
  /** Where "Details" leads, e.g. the run in the Temporal Web UI. */
  targetUrl?: string;
}

export interface CommitStatusResult {
  reported: boolean;
  reason?: string;
}

/** The shape of Temporal's activity logger (message first), so the default routes to pino. */
export type StatusLogger = QuietLogger;

export interface GithubActivityDeps {
  /** REST API base URL (config github.apiUrl): https://api.github.com, or https://HOST/api/v3. */
  apiUrl: string;
  /** Read on every call (config github.tokenEnv), so a rotated token is picked up. */
  token: () => string | undefined;
  /** Default: the activity's logger inside an activity, nothing outside. */
  logger?: StatusLogger;
  /** Requests per status at most, retries included (default 4). */
  maxAttempts?: number;
  /** A rate limit that lifts later than this is not waited for (default 60 s). */
  maxWaitMs?: number;
  /** Time limit of one HTTP request (default 10 s). */
  requestTimeoutMs?: number;
}

const SHA = /^[0-9a-f]{40}([0-9a-f]{24})?$/;
const REPOSITORY = /^([A-Za-z0-9_.-]+)\/([A-Za-z0-9_.-]+)$/;
const STATES: readonly string[] = ['pending', 'success', 'failure', 'error'];

let octokitModule: Promise<{ Octokit: typeof Octokit }> | undefined;

// @octokit/rest is ESM-only: a dynamic import works under tsx, plain Node 20 and jest (see api/octokit.ts).
function loadOctokit(): Promise<{ Octokit: typeof Octokit }> {
  octokitModule ??= import('@octokit/rest');
  octokitModule.catch(() => (octokitModule = undefined));
  return octokitModule;
}

export function createGithubActivities(deps: GithubActivityDeps) {
  const maxAttempts = deps.maxAttempts ?? 4;
  const maxWaitMs = deps.maxWaitMs ?? 60_000;
  const requestTimeoutMs = deps.requestTimeoutMs ?? 10_000;
  const baseUrl = deps.apiUrl.replace(/\/+$/, '');

  async function reportCommitStatus(input: CommitStatusInput): Promise<CommitStatusResult> {
    const log = deps.logger ?? activityLogger();
    const where = { repository: input?.repository, sha: input?.sha, context: input?.context, state: input?.state };
    let token: string | undefined;
    let stopBeating: () => void = () => undefined;
    try {
      token = deps.token() || undefined;
      const invalid = validate(input);
      if (invalid) return giveUp(log, where, `invalid input: ${invalid}`);
      if (!token) return giveUp(log, where, 'no token');
      const [, owner, repo] = REPOSITORY.exec(input.repository)!;
      const { Octokit } = await loadOctokit();
      const cancelled = activitySignal();
      // Alive while it waits on GitHub or on a Retry-After: another attempt reports a status
      // whose worker died (keepAlive).
      stopBeating = keepAlive();
      for (let attempt = 1; ; attempt++) {
        const signal = cancelled
          ? AbortSignal.any([cancelled, AbortSignal.timeout(requestTimeoutMs)])
          : AbortSignal.timeout(requestTimeoutMs);
        const octokit: Octokit = new Octokit({
          auth: token,
          baseUrl,
          userAgent: 'conveyor',
          log: { debug: noop, info: noop, warn: noop, error: noop },
          request: { signal },
        });
        try {
          await octokit.rest.repos.createCommitStatus({
            owner,
            repo,
            sha: input.sha,
            state: input.state,
            context: input.context,
            description: truncate(input.description, 140),
            target_url: input.targetUrl,
          });
          log.info('commit status reported', { ...where, attempt });
          return { reported: true };
        } catch (err) {
          if (cancelled?.aborted) return giveUp(log, where, 'cancelled');
          const retry = retryAfter(err, attempt);
          if (attempt >= maxAttempts || retry.waitMs === undefined) {
            return giveUp(log, where, redact(retry.reason, token));
          }
          if (retry.waitMs > maxWaitMs) {
            return giveUp(
              log,
              where,
              redact(`${retry.reason}; not waiting ${Math.ceil(retry.waitMs / 1000)} s`, token),
            );
          }
          log.warn('commit status not reported yet; retrying', {
            ...where,
            attempt,
            waitMs: retry.waitMs,
            reason: redact(retry.reason, token),
          });
          await sleep(retry.waitMs, cancelled);
        }
      }
    } catch (err) {
      // Never thrown: a status must not fail the pipeline that reports it.
      return giveUp(log, where, redact(`unexpected: ${(err as Error)?.message ?? String(err)}`, token));
    } finally {
      stopBeating();
    }
  }

  return { reportCommitStatus };
}

/** Whether and when to try again, and how to say what happened. */
function retryAfter(err: unknown, attempt: number): { waitMs?: number; reason: string } {
  const e = err as {
    status?: number;
    message?: string;
    response?: { headers?: Record<string, string | number | undefined> };
  };
  const status = typeof e?.status === 'number' ? e.status : 0;
  const headers = e?.response?.headers ?? {};
  const message = (e?.message ?? String(err)).split('\n')[0].slice(0, 200);
  const retryAfterS = Number(headers['retry-after']);
  const remaining = headers['x-ratelimit-remaining'];
  const resetS = Number(headers['x-ratelimit-reset']);
  const rateLimited =
    status === 429 ||
    (status === 403 &&
      (headers['retry-after'] !== undefined || String(remaining) === '0' || /rate limit/i.test(message)));
  if (rateLimited) {
    let waitMs: number;
    if (Number.isFinite(retryAfterS) && headers['retry-after'] !== undefined) waitMs = Math.max(0, retryAfterS) * 1000;
    else if (String(remaining) === '0' && Number.isFinite(resetS))
      waitMs = Math.max(0, resetS * 1000 - Date.now()) + 250;
    else waitMs = 60_000; // secondary rate limit without a hint: GitHub asks for at least a minute
    return { waitMs, reason: `rate limited by GitHub (${status})` };
  }
  if (!e?.response) {
    // No answer at all (connection refused, timeout; octokit calls these 500): short backoff.
    return { waitMs: 1000 * 2 ** (attempt - 1), reason: `GitHub unreachable: ${causeOf(err)}` };
  }
  if (status >= 500) return { waitMs: 1000 * 2 ** (attempt - 1), reason: `GitHub answered ${status}: ${message}` };
  const hint: Record<number, string> = {
    401: 'the token was rejected',
    403: 'the token may not write statuses to this repository',
    404: 'repository or commit not found, or the token cannot see it',
    422: 'GitHub refused the status',
  };
  return { reason: `GitHub answered ${status}: ${hint[status] ?? message}` };
}

function validate(input: CommitStatusInput): string | undefined {
  if (!input || typeof input !== 'object') return 'no input';
  if (!REPOSITORY.test(input.repository ?? '')) return 'repository must be owner/name';
  if (!SHA.test(input.sha ?? '')) return 'sha must be a full commit hash';
  if (!STATES.includes(input.state)) return `state must be one of ${STATES.join(', ')}`;
  if (typeof input.context !== 'string' || !input.context || input.context.length > 255)
    return 'context must be 1-255 characters';
  if (typeof input.description !== 'string') return 'description must be a string';
  if (input.targetUrl !== undefined && !/^https?:\/\/\S+$/.test(input.targetUrl))
    return 'targetUrl must be an http(s) URL';
  return undefined;
}

function giveUp(log: StatusLogger, where: Record<string, unknown>, reason: string): CommitStatusResult {
  log.warn('commit status not reported', { ...where, reason });
  return { reported: false, reason };
}

function truncate(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

const noop = () => undefined;

function activitySignal(): AbortSignal | undefined {
  return activityContext()?.cancellationSignal;
}
