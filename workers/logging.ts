// pino for every process; in the workers the SDK's runtime, workflow and activity loggers are
// routed to it (workers/runtime.ts) so each line carries the workflow ID, run ID, activity and task
// queue the SDK attaches, plus what the activity interceptor of workers/activity-context.ts adds
// (stage, distro, host). This module does not load the SDK: the API logs through it too.
//
// One JSON object per line on stdout (what log shippers read). People at a terminal get
// pino-pretty instead: CONVEYOR_LOG_PRETTY=1, or stdout is a TTY (CONVEYOR_LOG_PRETTY=0 forces
// JSON there). pino-pretty is used as a plain stream, not a transport: no worker thread, and a line
// is written before the process can exit.
//
// Secrets never reach a line: keys that name a secret are censored (`redact`), and every line is
// scrubbed of the values of the secret env vars this process holds (the config's, by name, and
// any *_TOKEN, *_SECRET, *_PASSWORD, *_API_KEY, *_PRIVATE_KEY, *_WEBHOOK_URL) just before it is
// written, so a token echoed inside an error message or a command's output is replaced too.
import pino from 'pino';
import pretty from 'pino-pretty';

const REDACTED = '[redacted]';

/** Keys whose values are secrets wherever they appear (one or two levels deep in a line). */
const SECRET_KEYS = [
  'token',
  'secret',
  'password',
  'authorization',
  'apiKey',
  'privateKey',
  'webhookUrl',
  'signingSecret',
  'botToken',
];
const REDACT_PATHS = [
  ...SECRET_KEYS,
  ...SECRET_KEYS.map((k) => `*.${k}`),
  'headers.authorization',
  'req.headers.authorization',
  'req.headers["x-hub-signature-256"]',
  'req.headers["x-slack-signature"]',
];

/** Env var names whose values are secrets by convention, whatever the config calls them. */
const SECRET_ENV = /(TOKEN|SECRET|PASSWORD|PASSPHRASE|API_KEY|APIKEY|PRIVATE_KEY|WEBHOOK_URL)$/i;
/** Shorter values would scrub ordinary words out of every line. */
const MIN_SECRET_LENGTH = 6;

const secretValues = new Set<string>();

/** Values (not names) that must never appear in a log line: scrubbed from every line written. */
export function registerSecretValues(values: (string | undefined)[]): void {
  for (const v of values) if (v && v.length >= MIN_SECRET_LENGTH) secretValues.add(v);
}

/** The values of this environment's conventionally named secret variables. */
export function conventionalSecrets(env: NodeJS.ProcessEnv): string[] {
  return Object.entries(env)
    .filter(([name, v]) => SECRET_ENV.test(name) && v)
    .map(([, v]) => v as string);
}

/** Replaces every registered secret value in one serialized line, also in its JSON-escaped form. */
export function scrubLine(line: string): string {
  let out = line;
  for (const v of secretValues) {
    for (const form of new Set([v, JSON.stringify(v).slice(1, -1)])) {
      if (out.includes(form)) out = out.split(form).join(REDACTED);
    }
  }
  return out;
}

export interface LoggerOptions {
  /** Pretty lines instead of JSON; default: CONVEYOR_LOG_PRETTY, else whether stdout is a TTY. */
  pretty?: boolean;
  /** Where lines go (tests); default stdout. */
  destination?: NodeJS.WritableStream;
  env?: NodeJS.ProcessEnv;
}

export function wantsPretty(env: NodeJS.ProcessEnv, isTty: boolean): boolean {
  const v = env.CONVEYOR_LOG_PRETTY;
  if (v === '1' || v === 'true') return true;
  if (v === '0' || v === 'false') return false;
  return isTty;
}

export function createLogger(name: string, opts: LoggerOptions = {}): pino.Logger {
  const env = opts.env ?? process.env;
  registerSecretValues(conventionalSecrets(env));
  const options: pino.LoggerOptions = {
    name,
    level: env.CONVEYOR_LOG_LEVEL ?? 'info',
    redact: { paths: REDACT_PATHS, censor: REDACTED },
    hooks: { streamWrite: scrubLine },
  };
  const usePretty = opts.pretty ?? wantsPretty(env, Boolean(process.stdout.isTTY));
  const destination = opts.destination ?? process.stdout;
  if (usePretty) {
    return pino(
      options,
      pretty({
        destination,
        colorize: destination === process.stdout && Boolean(process.stdout.isTTY),
        sync: true,
        translateTime: 'SYS:HH:MM:ss.l',
        ignore: 'pid,hostname,taskToken,namespace,isLocal,sdkComponent',
      }),
    );
  }
  return pino(options, destination);
}
