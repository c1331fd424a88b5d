// The `conveyor` command. Every subcommand takes --config FILE (or CONVEYOR_CONFIG); errors name
// what was wrong and exit non-zero. One file per command under cli/commands/.
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { abortCommand } from './commands/abort';
import { approveCommand } from './commands/approve';
import { auditCommand } from './commands/audit';
import { demoCommand } from './commands/demo';
import { devCommand } from './commands/dev';
import { keysCommand } from './commands/keys';
import { listCommand } from './commands/list';
import { promoteCommand } from './commands/promote';
import { replayCommand } from './commands/replay';
import { repoCommand } from './commands/repo';
import { rerunCommand } from './commands/rerun';
import { rejectCommand } from './commands/reject';
import { retryCommand } from './commands/retry';
import { setupCommand } from './commands/setup';
import { statusCommand } from './commands/status';
import { triggerCommand } from './commands/trigger';
import { watchCommand } from './commands/watch';
import { workersCommand } from './commands/workers';

/** The version this tree is: package.json's, which VERSION (the packages' version) repeats. */
const VERSION = (JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version: string })
  .version;

const program = new Command('conveyor')
  .description('Conveyor: continuous delivery of packaged software on Temporal')
  .version(VERSION, '-V, --version', 'print the version and exit')
  .option('--config <file>', 'conveyor.yml (default: CONVEYOR_CONFIG, ./conveyor.yml, ./conveyor.dev.yml)')
  .showHelpAfterError()
  .addHelpText(
    'after',
    `
Operators:
  conveyor trigger acme/widget main          start a run for the branch head, print its workflow ID
  conveyor list --status awaiting-operator   runs that wait for an operator
  conveyor watch <workflowId>                follow a run to its end (exit 0: succeeded)
  conveyor retry <workflowId> --stage test   re-run a failed stage; conveyor abort <workflowId> --reason …
  conveyor approve <workflowId>              let a run at its approval gate promote; conveyor reject … --reason …
  conveyor promote <workflowId> [--force]    promote a finished run's build again (an older one only with --force)
  conveyor rerun <workflowId> deploy/el9     re-run one stage of a finished run from its recorded inputs
  conveyor replay --since 7d                 replay recent runs against the local workflow code
  conveyor workers                           who polls which task queue, and the backlogs
  conveyor repo list                         published channels and their generations; repo show|rollback|remove
  conveyor keys rotate [--finish]            rotate the signing key: both keys sign during an overlap
  conveyor setup                             register the namespace and search attributes on the cluster
  conveyor audit --since 7d                  operator actions (who, when, why, on what), kept outside run histories

Temporal connection (the same for workers and the API), highest first:
  TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS, TEMPORAL_TLS_* env;
  conveyor.yml temporal.address, .namespace, .apiKeyEnv, .tls;
  a profile of TEMPORAL_CONFIG_FILE or ~/.config/temporalio/temporal.toml (temporal.profile,
  else TEMPORAL_PROFILE, else default); then localhost:7233, namespace default.`,
  );

for (const cmd of [
  devCommand(),
  demoCommand(),
  triggerCommand(),
  listCommand(),
  statusCommand(),
  watchCommand(),
  retryCommand(),
  abortCommand(),
  approveCommand(),
  rejectCommand(),
  promoteCommand(),
  rerunCommand(),
  replayCommand(),
  workersCommand(),
  repoCommand(),
  keysCommand(),
  setupCommand(),
  auditCommand(),
]) {
  program.addCommand(cmd.showHelpAfterError());
}

program.parseAsync().catch((err: unknown) => {
  process.stderr.write(`conveyor: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
