// `conveyor approve <workflowId>`: the `approve` Update for a run at its approval gate (before
// promote). The run itself accepts or refuses it (its validator), so the operator gets a definite
// answer: `approved <id>`, or why not.
import { Command } from 'commander';
import { approveUpdate } from '../../workflows/messages';
import { commandConfig, operatorUpdate, withClient } from './context';

export function approveCommand(): Command {
  return new Command('approve')
    .summary('let a run waiting for approval promote to production')
    .argument('<workflowId>', 'a pipeline run waiting in awaiting-approval')
    .description(
      'approve a run that waits at its approval gate, so it promotes to production. Sent as an Update: the run itself accepts it or refuses with the reason; who sent it (--by) is recorded in its status.',
    )
    .option('--comment <text>', 'recorded with the approval')
    .option('--by <name>', 'who approves (recorded in the status and history)', process.env.USER ?? 'operator')
    .action(async (id: string, o: { comment?: string; by: string }, cmd: Command) => {
      const config = commandConfig(cmd);
      await withClient(config, async (client) => {
        await operatorUpdate(
          client,
          config,
          id,
          approveUpdate,
          { by: o.by, comment: o.comment },
          (s) => `nothing awaits approval in ${id}: the run is ${s.status}`,
        );
        console.log(`approved ${id}`);
      });
    });
}
