// Process entry point: the webhook API.
// Usage: tsx api/main.ts [--config FILE] [--port N] [--host H] [--insecure-dev]
import { Command } from 'commander';
import { ConfigError, loadConfig, resolveConfigPath } from '../config/conveyor';
import { createLogger } from '../workers/logging';
import { connectClient } from '../workers/temporal';
import { createApi, listen } from './server';

async function main(): Promise<void> {
  const program = new Command('conveyor-api')
    .description('GitHub webhook API: starts a pipeline per pushed commit')
    .option('--config <file>', 'conveyor.yml to serve (default: CONVEYOR_CONFIG, ./conveyor.yml, ./conveyor.dev.yml)')
    .option('--port <n>', 'port to listen on', '3000')
    .option('--host <h>', 'address to listen on', '127.0.0.1')
    .option('--insecure-dev', 'accept unsigned webhooks (local development only)')
    .parse();
  const opts = program.opts<{ config?: string; port: string; host: string; insecureDev?: boolean }>();
  const logger = createLogger('api');
  const config = loadConfig(resolveConfigPath(opts.config, process.env));
  const secret = process.env[config.github.webhookSecretEnv];
  if (!secret && !opts.insecureDev) {
    throw new Error(
      `no webhook secret: set ${config.github.webhookSecretEnv} (github.webhookSecretEnv), ` +
        'or pass --insecure-dev to accept unsigned webhooks on a development machine',
    );
  }
  if (!secret) logger.warn('--insecure-dev: webhook signatures are NOT verified');
  const port = Number(opts.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port: not a port number: ${opts.port}`);
  // Temporal may be down now: the API starts anyway and spools verified pushes until it is back.
  const api = createApi({ config, connect: () => connectClient(config), logger, secret });
  const bound = await listen(api.server, port, opts.host);
  logger.info({ url: `http://${opts.host}:${bound}`, spool: api.spool.dir }, 'api listening');
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

main().catch((err: unknown) => {
  process.stderr.write(`conveyor-api: ${err instanceof ConfigError ? err.message : (err as Error).message}\n`);
  process.exit(1);
});
