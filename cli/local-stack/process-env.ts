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
import { chatCredentialEnvNames, type ConveyorConfig } from '../../config/conveyor';

export type StackProcess = 'api' | 'orchestrator' | 'builder';

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
  return env;
}
