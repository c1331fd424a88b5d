// The `conveyor` command. Every subcommand takes --config FILE (or CONVEYOR_CONFIG); errors name
// what was wrong and exit non-zero.
import path from 'node:path';
import { Command } from 'commander';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { PipelineStatus } from '../common/types';
import { ConfigError, loadConfig, resolveConfigPath } from '../config/conveyor';
import { loadDevConfig } from '../config/temporal-dev';
import { abortSignal, retrySignal, statusQuery } from '../workflows/messages';
import { connectClient } from '../workers/temporal';
import { runDemo } from './demo/demo';
import { followRun, renderStatus } from './follow';
import { resetHosts, runningStack, startStack, stopServices } from './local-stack/stack';
import { signalGroup, type Service } from './local-stack/services';
import { ROOT } from './local-stack/tools';

const program = new Command('conveyor')
  .description('Conveyor: continuous delivery of packaged software on Temporal')
  .option('--config <file>', 'conveyor.yml (default: CONVEYOR_CONFIG, ./conveyor.yml, ./conveyor.dev.yml)')
  .showHelpAfterError();

function configFile(): string {
  return resolveConfigPath(program.opts<{ config?: string }>().config, process.env, ROOT);
}

program
  .command('dev')
  .description('start the local stack (Temporal dev server, local AWS, workers, webhook API) until Ctrl-C')
  .option('--dev-config <file>', 'the local stack description', path.join(ROOT, 'temporal-dev.yml'))
  .option('--stop', 'stop a running local stack and exit')
  .option('--reset-hosts', 'remove the local staging hosts first, so this start makes them afresh')
  .action(async (o: { devConfig: string; stop?: boolean; resetHosts?: boolean }, cmd: Command) => {
    const dev = loadDevConfig(o.devConfig);
    if (o.resetHosts) {
      if (runningStack(dev)) throw new Error('stop the running local stack first (conveyor dev --stop)');
      await resetHosts(dev, (l) => console.log(l));
    }
    const file = resolveConfigPath(cmd.optsWithGlobals<{ config?: string }>().config, process.env, ROOT);
    if (o.stop) {
      const info = runningStack(dev);
      if (!info) {
        console.log('no local stack is running');
        return;
      }
      process.kill(info.pid, 'SIGTERM');
      const t0 = Date.now();
      while (runningStack(dev) && Date.now() - t0 < 30000) await new Promise((r) => setTimeout(r, 200));
      if (runningStack(dev)) signalGroup(info.pid, 'SIGKILL');
      console.log(`stopped the local stack (pid ${info.pid})`);
      return;
    }
    const config = loadConfig(file);
    const services: Service[] = [];
    let stopping = false;
    const stop = (sig: string) => {
      if (stopping) return;
      stopping = true;
      console.log(`\n${sig}: stopping the local stack ...`);
      void stopServices(dev, services).then(() => {
        console.log('stopped');
        process.exit(0);
      });
    };
    // Handlers first: a signal while the stack is still starting stops what has started so far.
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGHUP', () => stop('SIGHUP'));
    const { info } = await startStack(dev, config, (l) => console.log(l), services);
    console.log(`\nConveyor local stack is up (config ${info.configFile})`);
    console.log(`  Temporal Web UI: ${info.uiUrl}`);
    console.log(`  Temporal gRPC:   ${info.temporalAddress} (namespace ${info.namespace})`);
    console.log(`  Webhook API:     ${info.apiUrl}/webhooks/github   health: ${info.apiUrl}/healthz`);
    console.log(`  Local AWS:       ${info.awsEndpoint}`);
    console.log(`  Logs:            ${info.logDir}`);
    console.log('Ctrl-C stops everything.');
    await new Promise(() => undefined); // run until a signal
  });

program
  .command('demo')
  .description('run the whole chain on the local stack for the sample project, starting the stack if needed')
  .option('--dev-config <file>', 'the local stack description', path.join(ROOT, 'temporal-dev.yml'))
  .option('--fail', "make the sample's unit test fail, to see a failed stage")
  .action(async (o: { devConfig: string; fail?: boolean }, cmd: Command) => {
    const file = resolveConfigPath(cmd.optsWithGlobals<{ config?: string }>().config, process.env, ROOT);
    const dev = loadDevConfig(o.devConfig);
    process.exitCode = await runDemo({ dev, configFile: file, failUnit: o.fail });
  });

program
  .command('status <workflowId>')
  .description("print a run's status (the pipeline's `status` query)")
  .option('--json', 'print the raw JSON')
  .action(async (id: string, o: { json?: boolean }) => {
    const client = await connectClient(loadConfig(configFile()));
    try {
      const status = await client.workflow.getHandle(id).query(statusQuery);
      console.log(o.json ? JSON.stringify(status, null, 2) : renderStatus(status).join('\n'));
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw new Error(`unknown workflow: ${id}`);
      throw err;
    } finally {
      await client.connection.close();
    }
  });

program
  .command('watch <workflowId>')
  .description('follow a run with live per-stage progress; exits 0 when it succeeds, 1 otherwise')
  .action(async (id: string) => {
    const client = await connectClient(loadConfig(configFile()));
    try {
      const final = await followRun(client, id);
      process.exitCode = final.status === 'succeeded' ? 0 : 1;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw new Error(`unknown workflow: ${id}`);
      throw err;
    } finally {
      await client.connection.close();
    }
  });

/** Runs `fn` with a client and the run's current status; unknown workflows and closed servers get clear errors. */
async function withRun<T>(id: string, fn: (client: Client, status: PipelineStatus) => Promise<T>): Promise<T> {
  const client = await connectClient(loadConfig(configFile()));
  try {
    let status: PipelineStatus;
    try {
      status = await client.workflow.getHandle(id).query(statusQuery);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw new Error(`unknown workflow: ${id}`);
      throw err;
    }
    return await fn(client, status);
  } finally {
    await client.connection.close();
  }
}

program
  .command('retry <workflowId>')
  .description('re-run the failed stage(s) of a run that waits for an operator, as new child attempts')
  .option('--stage <stage>', 'only this stage: test, package, package/<distro>, publish')
  .option('--by <name>', 'who asks (recorded in the history)', process.env.USER ?? 'operator')
  .action(async (id: string, o: { stage?: string; by: string }) => {
    await withRun(id, async (client, status) => {
      if (status.status !== 'awaiting-operator') {
        throw new Error(`nothing awaits an operator in ${id} (status ${status.status})`);
      }
      const failed = status.stages
        .filter((s) => s.state === 'failed')
        .map((s) => (s.distro ? `${s.name}/${s.distro}` : s.name));
      if (o.stage && !failed.some((l) => l === o.stage || l.split('/')[0] === o.stage)) {
        throw new Error(`stage ${o.stage} is not waiting for a retry in ${id} (failed: ${failed.join(', ')})`);
      }
      await client.workflow.getHandle(id).signal(retrySignal, { stage: o.stage, by: o.by });
      console.log(`retry sent to ${id}: ${o.stage ?? failed.join(', ')}`);
    });
  });

program
  .command('abort <workflowId>')
  .description('end a run as aborted, cancelling what runs')
  .requiredOption('--reason <text>', 'why (recorded in the history and the status)')
  .option('--by <name>', 'who aborts', process.env.USER ?? 'operator')
  .action(async (id: string, o: { reason: string; by: string }) => {
    await withRun(id, async (client, status) => {
      if (status.endedAt) throw new Error(`${id} has already ended (${status.status})`);
      await client.workflow.getHandle(id).signal(abortSignal, { reason: o.reason, by: o.by });
      console.log(`abort sent to ${id}`);
    });
  });

program.parseAsync().catch((err: unknown) => {
  const msg = err instanceof ConfigError ? err.message : err instanceof Error ? err.message : String(err);
  process.stderr.write(`conveyor: ${msg}\n`);
  process.exit(1);
});
