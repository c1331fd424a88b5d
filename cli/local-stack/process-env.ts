// Each process of the stack starts with only its own secrets (shared/DESIGN.md "Trust boundaries"):
// - api: the webhook secret (verifies deliveries), the status token (api.statusTokenEnv, guards
//   /runs and /metrics) and Slack's signing secret (verifies slash commands and buttons); no GitHub
//   token, no signing key, no checkout key, no chat token.
// - orchestrator: the GitHub token (tags, pushes, commit statuses), the signing key when it comes
//   from an env var, the checkout credentials (ancestry checks and releases fetch the repository),
//   the chat credentials (Slack bot token, incoming-webhook URLs: its notifier posts the messages).
// - builder: runs repository code (in a sandbox); only the checkout credentials, which should be
//   read-only. Never the webhook secret, the GitHub token or the signing key.
// The same split is what the README's production section asks of systemd units or containers.
//
// The orchestrator also starts with a bounded V8 heap (ORCHESTRATOR_NODE_OPTIONS, the same flag as
// deploy/systemd/conveyor-orchestrator.service). Under 100 concurrent runs its live heap was
// ~85 MB (a heap snapshot at 430 MB RSS), yet with Node's default limit (a quarter of the
// machine's memory, ~4 GB here) V8 let garbage pile up to a 456–567 MB RSS peak; with a 1 GB
// limit the same load peaked at 413 MB, as fast (docs/benchmarks.md §2). 1 GB leaves room for
// the largest index a publish holds in memory (Contents lists every file of every package).
import { chatCredentialEnvNames, type ConveyorConfig } from '../../config/conveyor';

export type StackProcess = 'api' | 'orchestrator' | 'builder';

/** Node options of every orchestrator process: the heap limit (module comment). */
export const ORCHESTRATOR_NODE_OPTIONS = '--max-old-space-size=1024';

/** The env var names that hold secrets in this config, by the process that may hold each. */
export function secretEnvNames(config: ConveyorConfig): Record<StackProcess, string[]> {
  const checkout = config.repositories.flatMap((r) => [
    ...(r.checkout?.tokenEnv ? [r.checkout.tokenEnv] : []),
    ...(r.checkout?.githubApp?.privateKeyEnv ? [r.checkout.githubApp.privateKeyEnv] : []),
  ]);
  return {
    api: [
      config.github.webhookSecretEnv,
      ...(config.api.statusTokenEnv ? [config.api.statusTokenEnv] : []),
      ...(config.chat ? [config.chat.slack.signingSecretEnv] : []),
    ],
    orchestrator: [
      config.github.tokenEnv,
      ...(config.signing?.keyEnv ? [config.signing.keyEnv] : []),
      ...(config.signing?.nextKeyEnv ? [config.signing.nextKeyEnv] : []),
      ...checkout,
      ...chatCredentialEnvNames(config),
    ],
    builder: checkout,
  };
}

/**
 * `base` (the stack's environment) less every secret the process must not hold. Variables the
 * config does not name stay: the stack's own settings (TEMPORAL_ADDRESS, AWS_ENDPOINT_URL, …).
 * The orchestrator's NODE_OPTIONS gain its heap limit unless they set one already.
 */
export function processEnv(role: StackProcess, config: ConveyorConfig, base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const names = secretEnvNames(config);
  const allowed = new Set(names[role]);
  const env: NodeJS.ProcessEnv = { ...base };
  for (const name of [...names.api, ...names.orchestrator, ...names.builder]) {
    if (!allowed.has(name)) delete env[name];
  }
  // The usual names are secrets whatever the config calls its own: kept only where the config
  // gives them to this process.
  for (const name of [
    'GITHUB_TOKEN',
    'GITHUB_WEBHOOK_SECRET',
    'SLACK_BOT_TOKEN',
    'SLACK_SIGNING_SECRET',
    'SLACK_WEBHOOK_URL',
  ]) {
    if (!allowed.has(name)) delete env[name];
  }
  if (role === 'orchestrator' && !/--max-old-space-size\b/.test(env.NODE_OPTIONS ?? '')) {
    return withNodeOptions(env, ORCHESTRATOR_NODE_OPTIONS);
  }
  return env;
}

/** `env` with `options` after its NODE_OPTIONS (for a repeated V8 flag, the last one counts). */
export function withNodeOptions(env: NodeJS.ProcessEnv, options: string): NodeJS.ProcessEnv {
  return { ...env, NODE_OPTIONS: [env.NODE_OPTIONS, options].filter(Boolean).join(' ') };
}
