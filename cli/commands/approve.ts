// `conveyor approve <workflowId>`: the `approve` signal for a run at its approval gate (before
// promote), sent only when the run waits there, so the operator hears at once when it does not.
import { Command } from 'commander';
import { approveSignal } from '../../workflows/messages';
import { commandConfig, queryStatus, withClient } from './context';

export function approveCommand(): Command {
  return new Command('approve')
    .summary('let a run waiting for approval promote to production')
    .argument('<workflowId>', 'a pipeline run waiting in awaiting-approval')
    .description('approve a run that waits at its approval gate, so it promotes to production')
    .option('--comment <text>', 'recorded with the approval')
    .option('--by <name>', 'who approves (recorded in the status and history)', process.env.USER ?? 'operator')
    .action(async (id: string, o: { comment?: string; by: string }, cmd: Command) => {
      const config = commandConfig(cmd);
      await withClient(config, async (client) => {
        const status = await queryStatus(client, config, id);
        if (status.status !== 'awaiting-approval') {
          throw new Error(`nothing awaits approval in ${id}: the run is ${status.status}`);
        }
        await client.workflow.getHandle(id).signal(approveSignal, { by: o.by, comment: o.comment });
        console.log(`approval sent to ${id}`);
      });
    });
}
