// Process entry point: the webhook API. Two listeners: the webhook listener (--host/--port, what
// GitHub reaches) and the status listener (/runs, /metrics; api.statusHost/statusPort, loopback
// by default). It refuses to start on settings that are only safe on a laptop (config/production.ts).
// Usage: tsx api/main.ts [--config FILE] [--port N] [--host H] [--status-port N] [--status-host H] [--insecure-dev]
import { Command } from 'commander';
import { ConfigError, loadConfig, resolveConfigPath } from '../config/conveyor';
import { productionProblems } from '../config/production';
import { createLogger } from '../workers/logging';
import { connectClient } from '../workers/temporal';
import { createApi, listen } from './server';

function portOption(flag: string, value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`${flag}: not a port number: ${value} (0 to 65535; 0 picks a free port)`);
  }
  return port;
}

async function main(): Promise<void> {
  const program = new Command('conveyor-api')
    .description(
      'GitHub webhook API: starts a pipeline per pushed commit; with chat in conveyor.yml also Slack slash commands and buttons (POST /webhooks/slack)',
    )
    .option('--config <file>', 'conveyor.yml to serve (default: CONVEYOR_CONFIG, ./conveyor.yml, ./conveyor.dev.yml)')
    .option('--port <n>', 'webhook listener port', '3000')
    .option('--host <h>', 'webhook listener address', '127.0.0.1')
    .option('--status-port <n>', 'status listener port, for /runs and /metrics (default: config api.statusPort)')
    .option('--status-host <h>', 'status listener address (default: config api.statusHost, 127.0.0.1)')
    .option('--insecure-dev', 'accept unsigned webhooks (local development only, loopback only)')
    .parse();
  const opts = program.opts<{
    config?: string;
    port: string;
    host: string;
    statusPort?: string;
    statusHost?: string;
    insecureDev?: boolean;
  }>();
  const logger = createLogger('api');
  const config = loadConfig(resolveConfigPath(opts.config, process.env));
  const port = portOption('--port', opts.port);
  const statusPort =
    opts.statusPort === undefined ? config.api.statusPort : portOption('--status-port', opts.statusPort);
  const statusHost = opts.statusHost ?? config.api.statusHost;
  const problems = productionProblems(config, {
    insecureDev: opts.insecureDev,
    listenHost: opts.host,
    statusHost,
    env: process.env,
  });
  if (problems.length > 0) {
    throw new Error(
      problems.length === 1 ? problems[0] : `refusing to start:\n${problems.map((p) => `  ${p}`).join('\n')}`,
    );
  }
  const secret = process.env[config.github.webhookSecretEnv] || undefined;
  if (!secret) logger.warn('--insecure-dev: webhook signatures are NOT verified');
  const statusToken = config.api.statusTokenEnv ? process.env[config.api.statusTokenEnv] : undefined;
  const slackSecret = config.chat ? process.env[config.chat.slack.signingSecretEnv] || undefined : undefined;
  // Temporal may be down now: the API starts anyway and spools verified pushes until it is back.
  const api = createApi({ config, connect: () => connectClient(config), logger, secret, statusToken, slackSecret });
  const bound = await listenOr(listen(api.server, port, opts.host), `webhook listener ${opts.host}:${port}`, '--port');
  const statusBound = await listenOr(
    listen(api.statusServer, statusPort, statusHost),
    `status listener ${statusHost}:${statusPort}`,
    '--status-port or api.statusPort',
  );
  logger.info(
    {
      url: `http://${hostForUrl(opts.host)}:${bound}`,
      statusUrl: `http://${hostForUrl(statusHost)}:${statusBound}`,
      statusAuth: statusToken ? 'bearer token' : 'none (loopback)',
      spool: api.spool.dir,
    },
    'api listening',
  );
  const stop = () => {
    api.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

async function listenOr(bound: Promise<number>, what: string, fix: string): Promise<number> {
  try {
    return await bound;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new Error(`${what}: cannot listen (${code}): choose another port with ${fix}`);
  }
}

function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

main().catch((err: unknown) => {
  process.stderr.write(`conveyor-api: ${err instanceof ConfigError ? err.message : (err as Error).message}\n`);
  process.exit(1);
});
