// `conveyor reject <workflowId> --reason …`: the `reject` signal for a run at its approval gate;
// the run ends `rejected` and promotes nothing.
import { Command } from 'commander';
import { rejectSignal } from '../../workflows/messages';
import { commandConfig, queryStatus, withClient } from './context';

export function rejectCommand(): Command {
  return new Command('reject')
    .summary('end a run waiting for approval as rejected')
    .argument('<workflowId>', 'a pipeline run waiting in awaiting-approval')
    .description('reject a run that waits at its approval gate: it ends rejected and promotes nothing')
    .requiredOption('--reason <text>', 'why (recorded in the status and history)')
    .option('--by <name>', 'who rejects', process.env.USER ?? 'operator')
    .action(async (id: string, o: { reason: string; by: string }, cmd: Command) => {
      if (!o.reason.trim()) throw new Error('--reason: say why the run is rejected');
      const config = commandConfig(cmd);
      await withClient(config, async (client) => {
        const status = await queryStatus(client, config, id);
        if (status.status !== 'awaiting-approval') {
          throw new Error(`nothing awaits approval in ${id}: the run is ${status.status}`);
        }
        await client.workflow.getHandle(id).signal(rejectSignal, { by: o.by, reason: o.reason });
        console.log(`rejection sent to ${id}`);
      });
    });
}
