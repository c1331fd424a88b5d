// Settings that are fine on a laptop and dangerous anywhere else. The schema cannot refuse them
// (the local stack needs every one of them), so each entry point asks this module at start and
// refuses to run while any problem is listed, each problem saying what to change. What counts as
// "the local stack": the AWS endpoint (and the address listened on) on loopback — a production
// deployment talks to real AWS, where `aws.endpoint` is unset.
import type { ConveyorConfig, Env } from './conveyor';

/** Shorter webhook secrets and status tokens are refused: GitHub suggests a long random string. */
export const MIN_SECRET_LENGTH = 16;

export interface ProductionContext {
  /** `--insecure-dev`: unsigned webhooks accepted. */
  insecureDev?: boolean;
  /** The address the webhook listener binds to; set only by the API, whose checks it enables. */
  listenHost?: string;
  /** The address the status listener binds to (default: config api.statusHost). */
  statusHost?: string;
  /** Where the secrets named by the config are read (default process.env). */
  env?: Env;
}

/** 127.0.0.0/8, ::1, localhost: reachable from this machine only. 0.0.0.0 and :: are everything. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h) || h === '::ffff:127.0.0.1';
}

/** True for a URL whose host is a loopback address; false for anything else, unparsable included. */
export function isLoopbackUrl(url: string | undefined): boolean {
  if (!url) return false;
  try {
    return isLoopbackHost(new URL(url).hostname);
  } catch {
    return false;
  }
}

/** The webhook secret: missing (only with --insecure-dev on loopback) or too short to resist guessing. */
export function webhookSecretProblems(config: ConveyorConfig, ctx: ProductionContext = {}): string[] {
  const env = ctx.env ?? process.env;
  const name = config.github.webhookSecretEnv;
  const secret = env[name];
  if (!secret) {
    return ctx.insecureDev
      ? []
      : [
          `no webhook secret: set ${name} (github.webhookSecretEnv), ` +
            'or pass --insecure-dev to accept unsigned webhooks on a development machine',
        ];
  }
  if (secret.length < MIN_SECRET_LENGTH) {
    return [
      `the webhook secret in ${name} (github.webhookSecretEnv) has ${secret.length} characters: ` +
        `use at least ${MIN_SECRET_LENGTH} random ones (e.g. \`openssl rand -hex 32\`), ` +
        "and set the same value as the webhook's secret on GitHub",
    ];
  }
  return [];
}

/** --insecure-dev is for a listener only this machine can reach. */
export function insecureDevProblems(ctx: ProductionContext): string[] {
  if (!ctx.insecureDev || !ctx.listenHost || isLoopbackHost(ctx.listenHost)) return [];
  return [
    `--insecure-dev accepts unsigned webhooks from anyone who can reach ${ctx.listenHost}: ` +
      'listen on 127.0.0.1 (--host 127.0.0.1) for local development, or drop --insecure-dev and ' +
      'set the webhook secret (github.webhookSecretEnv)',
  ];
}

/** Commit statuses carry the GitHub token: plain http is only acceptable to a local fake. */
export function githubApiProblems(config: ConveyorConfig): string[] {
  const url = config.github.apiUrl;
  if (!/^http:/i.test(url) || isLoopbackUrl(url)) return [];
  return [
    `github.apiUrl ${url} is plain http: the GitHub token would cross the network unencrypted; ` +
      'use https:// (GitHub Enterprise Server: https://HOST/api/v3)',
  ];
}

/**
 * The `local` fleet executor runs host commands as root in chroots under `fleet.hostsDir`: the
 * local stack's Debian roots. Outside the local stack (an AWS endpoint that is not loopback, or
 * real AWS) it must not be configured. Workers that run the fleet executor call this at start.
 */
export function chrootExecutorProblems(config: ConveyorConfig): string[] {
  if (!config.fleet?.hostsDir || isLoopbackUrl(config.aws.endpoint)) return [];
  const where = config.aws.endpoint
    ? `aws.endpoint ${config.aws.endpoint} is not on loopback`
    : 'aws.endpoint is unset';
  return [
    `fleet.hostsDir is set but ${where}: the local executor runs host commands as root in local host directories ` +
      'and is for the local stack only; remove fleet.hostsDir and tag staging instances ' +
      'ConveyorExecutor=ssm (or ssh with fleet.ssh)',
  ];
}

/** /runs and /metrics: a token when served beyond loopback, and a token worth the name. */
export function statusListenerProblems(config: ConveyorConfig, ctx: ProductionContext = {}): string[] {
  const env = ctx.env ?? process.env;
  const host = ctx.statusHost ?? config.api.statusHost;
  const tokenEnv = config.api.statusTokenEnv;
  const token = tokenEnv ? env[tokenEnv] : undefined;
  const problems: string[] = [];
  if (tokenEnv && !token) {
    problems.push(
      `api.statusTokenEnv names ${tokenEnv}, which is not set: put the bearer token for /runs and /metrics ` +
        `in ${tokenEnv}, or remove api.statusTokenEnv to serve them on loopback only`,
    );
  } else if (token && token.length < MIN_SECRET_LENGTH) {
    problems.push(
      `the status token in ${tokenEnv} (api.statusTokenEnv) has ${token.length} characters: ` +
        `use at least ${MIN_SECRET_LENGTH} random ones (e.g. \`openssl rand -hex 32\`)`,
    );
  }
  if (!tokenEnv && !isLoopbackHost(host)) {
    problems.push(
      `api.statusHost ${host} serves /runs and /metrics without authentication beyond this machine: ` +
        'set api.statusTokenEnv to require a bearer token, or bind it to 127.0.0.1',
    );
  }
  return problems;
}

/** ChatOps: the API verifies every Slack request with the signing secret (never without one). */
export function slackSecretProblems(config: ConveyorConfig, ctx: ProductionContext = {}): string[] {
  const chat = config.chat;
  if (!chat) return [];
  const name = chat.slack.signingSecretEnv;
  const secret = (ctx.env ?? process.env)[name];
  if (!secret) {
    return [
      `chat is configured but ${name} (chat.slack.signingSecretEnv) is not set: put the Slack app's signing ` +
        'secret there (Basic Information → App Credentials), or remove chat from conveyor.yml',
    ];
  }
  if (secret.length < MIN_SECRET_LENGTH) {
    return [`the Slack signing secret in ${name} has ${secret.length} characters: copy the whole one from the app`];
  }
  return [];
}

/** Chat messages carry the bot token: plain http is only acceptable to a local stand-in. */
export function slackApiProblems(config: ConveyorConfig): string[] {
  const url = config.chat?.slack.apiUrl;
  if (!url || !/^http:/i.test(url) || isLoopbackUrl(url)) return [];
  return [`chat.slack.apiUrl ${url} is plain http: the bot token would cross the network unencrypted; use https://`];
}

/**
 * Every problem at once, as the config loader reports its own. Empty: fit for production.
 * Config-wide checks always; the API's own (webhook secret, --insecure-dev, status listener) when
 * `listenHost` says the caller is the API: workers hold no webhook secret and listen nowhere.
 */
export function productionProblems(config: ConveyorConfig, ctx: ProductionContext = {}): string[] {
  const api =
    ctx.listenHost !== undefined
      ? [
          ...webhookSecretProblems(config, ctx),
          ...insecureDevProblems(ctx),
          ...statusListenerProblems(config, ctx),
          ...slackSecretProblems(config, ctx),
        ]
      : [];
  return [...api, ...githubApiProblems(config), ...slackApiProblems(config), ...chrootExecutorProblems(config)];
}
