// `conveyor reject <workflowId> --reason …`: the `reject` Update for a run at its approval gate;
// the run ends `rejected` and promotes nothing, or refuses when nothing awaits approval.
import { Command } from 'commander';
import { rejectUpdate } from '../../workflows/messages';
import { commandConfig, operatorUpdate, withClient } from './context';

export function rejectCommand(): Command {
  return new Command('reject')
    .summary('end a run waiting for approval as rejected')
    .argument('<workflowId>', 'a pipeline run waiting in awaiting-approval')
    .description(
      'reject a run that waits at its approval gate: it ends rejected and promotes nothing. Sent as an Update: the run itself accepts it or refuses with the reason; who sent it (--by) is recorded in its status.',
    )
    .requiredOption('--reason <text>', 'why (recorded in the status and history)')
    .option('--by <name>', 'who rejects', process.env.USER ?? 'operator')
    .action(async (id: string, o: { reason: string; by: string }, cmd: Command) => {
      if (!o.reason.trim()) throw new Error('--reason: say why the run is rejected');
      const config = commandConfig(cmd);
      await withClient(config, async (client) => {
        await operatorUpdate(
          client,
          config,
          id,
          rejectUpdate,
          { by: o.by, reason: o.reason },
          (s) => `nothing awaits approval in ${id}: the run is ${s.status}`,
        );
        console.log(`rejected ${id}`);
      });
    });
}
