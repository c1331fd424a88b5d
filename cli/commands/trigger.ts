// `conveyor trigger <repo> <branch> [--sha SHA]`: starts a pipeline the way a GitHub push does. The
// CLI builds the push payload GitHub would send for the branch head (or the given commit) and
// hands it to the webhook's own decision and start, so both paths agree on which branches run,
// on the run's input and on its ID (a second trigger of the same commit finds the existing run).
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import { promisify } from 'node:util';
import { Command } from 'commander';
import { decidePush } from '../../api/github-push';
import { startPipeline } from '../../api/start-pipeline';
import { createGitAuth, gitBaseEnv, type GitAuth } from '../../activities/git/auth';
import { findBranchRule } from '../../common/branch-rules';
import { findRepository, type RepositoryConfig } from '../../config/conveyor';
import { pushPayload } from '../webhook-client';
import { commandConfig, withClient } from './context';
import { watchRun } from './watch';

const run = promisify(execFile);
const SHA = /^[0-9a-f]{40}$/;

interface TriggerOptions {
  sha?: string;
  message?: string;
  by: string;
  watch?: boolean;
}

export function triggerCommand(): Command {
  return new Command('trigger')
    .summary('start a pipeline for a branch head or commit; prints its workflow ID')
    .argument('<repository>', 'a repository of conveyor.yml, as owner/name')
    .argument('<branch>', 'a branch that one of its branch rules monitors')
    .description(
      "start a pipeline for the branch's head (git ls-remote of the repository's cloneUrl) or a given commit, " +
        'as a push webhook would; prints the workflow ID',
    )
    .option('--sha <sha>', 'the full 40-hex commit to build instead of the branch head')
    .option('--message <text>', 'commit message shown in the run (default: who triggered it)')
    .option('--by <name>', 'who triggers (shown as the pusher)', process.env.USER ?? 'operator')
    .option('--watch', 'then follow the run like `conveyor watch`; the exit code is its outcome')
    .action(async (repository: string, branch: string, o: TriggerOptions, cmd: Command) => {
      const config = commandConfig(cmd);
      const repo = findRepository(config, repository);
      if (!repo) {
        const known = config.repositories.map((r) => r.name).join(', ') || 'none';
        throw new Error(`unknown repository ${repository}: ${config.file} configures ${known}`);
      }
      if (!findBranchRule(repo.branches, branch)) {
        const rules = repo.branches.map((b) => b.match).join(', ');
        throw new Error(
          `branch ${branch} of ${repo.name} is not monitored: no branch rule matches it (rules: ${rules})`,
        );
      }
      const sha = o.sha ? checkedSha(o.sha) : await branchHead(repo, branch, createGitAuth(config));
      const payload = pushPayload({
        repository: repo.name,
        branch,
        sha,
        message: o.message ?? `conveyor trigger by ${o.by}`,
        author: o.by,
      });
      // The webhook's own decision: the checks above only make its reasons more precise.
      const decision = decidePush(config, payload, `conveyor-trigger-${crypto.randomUUID()}`);
      if (decision.action !== 'start') throw new Error(`not started: ${decision.reason.replace(/^ignored: /, '')}`);
      const outcome = await withClient(config, async (client) => {
        const started = await startPipeline(client, decision.input, config.temporal.taskQueue);
        console.log(started.workflowId);
        process.stderr.write(
          started.started
            ? `started ${repo.name} ${branch} @ ${sha.slice(0, 12)}; follow it: conveyor watch ${started.workflowId}\n`
            : `a run of ${repo.name} ${branch} @ ${sha.slice(0, 12)} exists already (a finished run is not started again)\n`,
        );
        return o.watch ? watchRun(client, config, started.workflowId) : undefined;
      });
      if (outcome !== undefined) process.exitCode = outcome === 'succeeded' ? 0 : 1;
    });
}

function checkedSha(sha: string): string {
  const s = sha.toLowerCase();
  if (!SHA.test(s) || /^0+$/.test(s)) throw new Error(`--sha: not a full 40-hex commit SHA: ${sha}`);
  return s;
}

/** The branch head as the remote has it now; GIT_TERMINAL_PROMPT=0 so a private remote fails instead of asking;
 * the repository's checkout credential (if any) is read from this shell's environment. */
async function branchHead(repo: RepositoryConfig, branch: string, auth: GitAuth): Promise<string> {
  const ref = `refs/heads/${branch}`;
  let stdout: string;
  try {
    ({ stdout } = await run('git', ['ls-remote', '--', repo.cloneUrl, ref], {
      timeout: 60000,
      env: { ...gitBaseEnv(), ...(await auth(repo.cloneUrl)) },
    }));
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    const why = (e.stderr ?? '').trim().split('\n')[0] || e.message;
    throw new Error(`cannot read the branches of ${repo.name} at ${repo.cloneUrl}: ${why}`);
  }
  const line = stdout.split('\n').find((l) => l.split('\t')[1] === ref);
  if (!line) throw new Error(`branch ${branch} does not exist in ${repo.cloneUrl} (git ls-remote found no ${ref})`);
  return line.split('\t')[0];
}
