// `conveyor dev`: the local stack of temporal-dev.yml in the foreground until Ctrl-C; `--stop`
// stops a running one. The stack's modules load only here, so the operator commands start fast.
import path from 'node:path';
import { Command } from 'commander';
import type { Service } from '../local-stack/services';
import { ROOT } from '../local-stack/tools';
import { configPath } from './context';

export function devCommand(): Command {
  return new Command('dev')
    .summary('start the local stack until Ctrl-C (--stop stops it)')
    .description('start the local stack (Temporal dev server, local AWS, workers, webhook API) until Ctrl-C')
    .option('--dev-config <file>', 'the local stack description', path.join(ROOT, 'temporal-dev.yml'))
    .option('--stop', 'stop a running local stack (SIGKILL after 30 s) and exit once it is gone')
    .option('--reset-hosts', 'remove the local staging hosts first, so this start makes them afresh')
    .option(
      '--reset',
      "forget every run and published object first (Temporal's SQLite file and the buckets under <dataDir>/s3)",
    )
    .action(async (o: { devConfig: string; stop?: boolean; resetHosts?: boolean; reset?: boolean }, cmd: Command) => {
      const [
        { loadConfig },
        { loadDevConfig },
        { resetHosts, resetStores, runningStack, startStack, stopRunningStack, stopServices },
      ] = await Promise.all([
        import('../../config/conveyor'),
        import('../../config/temporal-dev'),
        import('../local-stack/stack'),
      ]);
      const dev = loadDevConfig(o.devConfig);
      if (o.resetHosts) {
        if (runningStack(dev)) throw new Error('stop the running local stack first (conveyor dev --stop)');
        await resetHosts(dev, (l) => console.log(l));
      }
      if (o.reset) {
        if (runningStack(dev)) throw new Error('stop the running local stack first (conveyor dev --stop)');
        resetStores(dev, (l) => console.log(l));
      }
      if (o.stop) {
        const info = runningStack(dev);
        if (!info) {
          console.log('no local stack is running');
          return;
        }
        const how = await stopRunningStack(info.pid);
        console.log(
          `stopped the local stack (pid ${info.pid})${how === 'killed' ? ' with SIGKILL: it did not stop within 30 s' : ''}`,
        );
        return;
      }
      const config = loadConfig(configPath(cmd));
      const started: Service[] = [];
      let stopping = false;
      const stop = (sig: string) => {
        if (stopping) return;
        stopping = true;
        console.log(`\n${sig}: stopping the local stack ...`);
        void stopServices(dev, started).then(() => {
          console.log('stopped');
          process.exit(0);
        });
      };
      // Handlers first: a signal while the stack is still starting stops what has started so far.
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGHUP', () => stop('SIGHUP'));
      const { info } = await startStack(dev, config, (l) => console.log(l), started);
      console.log(`\nConveyor local stack is up (config ${info.configFile})`);
      console.log(`  Temporal Web UI: ${info.uiUrl}`);
      console.log(`  Temporal gRPC:   ${info.temporalAddress} (namespace ${info.namespace})`);
      console.log(`  Webhook API:     ${info.apiUrl}/webhooks/github   health: ${info.apiUrl}/healthz`);
      console.log(`  Runs, metrics:   ${info.statusUrl}/runs/<workflowId>   ${info.statusUrl}/metrics`);
      for (const [w, url] of Object.entries(info.workerMetricsUrls ?? {}))
        console.log(`  ${`${w} metrics:`.padEnd(17)}${url}`);
      console.log(`  Local AWS:       ${info.awsEndpoint}   buckets kept in ${info.s3DataDir}`);
      console.log(`  Logs:            ${info.logDir}`);
      console.log('Ctrl-C stops everything.');
      await new Promise(() => undefined); // run until a signal
    });
}
