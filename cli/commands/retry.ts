// `conveyor retry <workflowId>`: the `retry` Update; the run's validator refuses it with the reason
// when nothing (or not that stage) waits for an operator, so the answer is definite.
import { Command } from 'commander';
import { retryUpdate } from '../../workflows/messages';
import { commandConfig, operatorUpdate, withClient } from './context';

export function retryCommand(): Command {
  return new Command('retry')
    .summary('re-run the failed stage(s) of a run awaiting an operator')
    .argument('<workflowId>', 'a pipeline run waiting in awaiting-operator')
    .description(
      're-run the failed stage(s) of a run that waits for an operator, as new child attempts (…#2). Sent as an Update: the run itself accepts it or refuses with the reason; who sent it (--by) is recorded in its status.',
    )
    .option('--stage <stage>', 'only this stage: test, package, package/<distro>, publish, deploy/<distro>, verify')
    .option('--by <name>', 'who asks (recorded in the history)', process.env.USER ?? 'operator')
    .action(async (id: string, o: { stage?: string; by: string }, cmd: Command) => {
      const config = commandConfig(cmd);
      await withClient(config, async (client) => {
        const answer = await operatorUpdate(
          client,
          config,
          id,
          retryUpdate,
          { stage: o.stage, by: o.by },
          (s) => `nothing awaits an operator in ${id}: the run is ${s.status}`,
        );
        console.log(`retrying ${id}: ${answer.detail}`);
      });
    });
}
