// `conveyor retry <workflowId>`: the `retry` signal, sent only when something waits for it, so an
// operator hears at once that a run is not waiting instead of a signal the run ignores.
import { Command } from 'commander';
import { retrySignal } from '../../workflows/messages';
import { commandConfig, queryStatus, stageLabel, withClient } from './context';

export function retryCommand(): Command {
  return new Command('retry')
    .summary('re-run the failed stage(s) of a run awaiting an operator')
    .argument('<workflowId>', 'a pipeline run waiting in awaiting-operator')
    .description('re-run the failed stage(s) of a run that waits for an operator, as new child attempts (…#2)')
    .option('--stage <stage>', 'only this stage: test, package, package/<distro>, publish, deploy/<distro>, verify')
    .option('--by <name>', 'who asks (recorded in the history)', process.env.USER ?? 'operator')
    .action(async (id: string, o: { stage?: string; by: string }, cmd: Command) => {
      const config = commandConfig(cmd);
      await withClient(config, async (client) => {
        const status = await queryStatus(client, config, id);
        if (status.status !== 'awaiting-operator') {
          throw new Error(`nothing awaits an operator in ${id}: the run is ${status.status}`);
        }
        const failed = status.stages.filter((s) => s.state === 'failed').map(stageLabel);
        if (o.stage && !failed.some((l) => l === o.stage || l.split('/')[0] === o.stage)) {
          throw new Error(`stage ${o.stage} does not wait for a retry in ${id} (waiting: ${failed.join(', ')})`);
        }
        await client.workflow.getHandle(id).signal(retrySignal, { stage: o.stage, by: o.by });
        console.log(`retry sent to ${id}: ${o.stage ?? failed.join(', ')}`);
      });
    });
}
