// `conveyor abort <workflowId> --reason …`: the `abort` Update; the run cancels what runs and ends
// as `aborted` with the reason in its status and history, or refuses when it has ended.
import { Command } from 'commander';
import { abortUpdate } from '../../workflows/messages';
import { commandConfig, operatorUpdate, withClient } from './context';

export function abortCommand(): Command {
  return new Command('abort')
    .summary('end a run as aborted')
    .argument('<workflowId>', 'a pipeline run that has not ended')
    .description(
      'end a run as aborted, cancelling what runs. Sent as an Update: the run itself accepts it or refuses with the reason; who sent it (--by) is recorded in its status.',
    )
    .requiredOption('--reason <text>', 'why (recorded in the history and the status)')
    .option('--by <name>', 'who aborts (recorded in the history)', process.env.USER ?? 'operator')
    .action(async (id: string, o: { reason: string; by: string }, cmd: Command) => {
      if (!o.reason.trim()) throw new Error('--reason: say why the run is aborted');
      const config = commandConfig(cmd);
      await withClient(config, async (client) => {
        await operatorUpdate(
          client,
          config,
          id,
          abortUpdate,
          { reason: o.reason, by: o.by },
          (s) => `${id} has already ended (${s.status}): nothing to abort`,
        );
        console.log(`aborted ${id}`);
      });
    });
}
