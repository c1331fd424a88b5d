// `conveyor abort <workflowId> --reason …`: the `abort` signal; the run cancels what runs and ends
// as `aborted` with the reason in its status and history.
import { Command } from 'commander';
import { abortSignal } from '../../workflows/messages';
import { commandConfig, queryStatus, withClient } from './context';

export function abortCommand(): Command {
  return new Command('abort')
    .summary('end a run as aborted')
    .argument('<workflowId>', 'a pipeline run that has not ended')
    .description('end a run as aborted, cancelling what runs')
    .requiredOption('--reason <text>', 'why (recorded in the history and the status)')
    .option('--by <name>', 'who aborts (recorded in the history)', process.env.USER ?? 'operator')
    .action(async (id: string, o: { reason: string; by: string }, cmd: Command) => {
      if (!o.reason.trim()) throw new Error('--reason: say why the run is aborted');
      const config = commandConfig(cmd);
      await withClient(config, async (client) => {
        const status = await queryStatus(client, config, id);
        if (status.endedAt) throw new Error(`${id} has already ended (${status.status}): nothing to abort`);
        await client.workflow.getHandle(id).signal(abortSignal, { reason: o.reason, by: o.by });
        console.log(`abort sent to ${id}`);
      });
    });
}
