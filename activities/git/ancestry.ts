// Commit ancestry, asked of git and never inferred from arrival order or build numbers: pushes
// can arrive out of order, and a deploy must never replace a commit with one of its ancestors.
// Each call fetches the two commits (with history) into a fresh bare repository: cheap for local
// and GitHub remotes alike, and no shared cache to lock between concurrent activities.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../common/failures';
import { runChecked, runProcess } from '../exec/process';
import { gitBaseEnv, type GitAuth } from './auth';

const SHA = /^[0-9a-f]{40}$/;

export interface IsAncestorInput {
  cloneUrl: string;
  ancestor: string;
  descendant: string;
}

export function createGitActivities(deps: { workspaceRoot?: string; gitAuth?: GitAuth }) {
  return {
    /** True when `ancestor` is reachable from `descendant` (a commit is its own ancestor). */
    async isAncestor(input: IsAncestorInput): Promise<boolean> {
      for (const sha of [input.ancestor, input.descendant]) {
        if (!SHA.test(sha))
          throw ApplicationFailure.nonRetryable(
            `not a full commit sha: ${JSON.stringify(sha)}`,
            FailureType.CheckoutFailed,
          );
      }
      if (input.ancestor === input.descendant) return true;
      const root = deps.workspaceRoot ?? path.join(os.tmpdir(), 'conveyor-work');
      fs.mkdirSync(root, { recursive: true });
      const dir = fs.mkdtempSync(path.join(root, 'ancestry-'));
      const env = { ...gitBaseEnv(), ...(await deps.gitAuth?.(input.cloneUrl)) };
      try {
        await runChecked('git', ['init', '--quiet', '--bare', dir], { env });
        const fetched = await runProcess(
          'git',
          ['-C', dir, 'fetch', '--quiet', '--filter=blob:none', '--', input.cloneUrl, input.ancestor, input.descendant],
          { env },
        );
        if (fetched.exitCode !== 0) {
          throw ApplicationFailure.retryable(
            `cannot fetch ${input.ancestor} and ${input.descendant} from ${input.cloneUrl}: ${fetched.output.trim().slice(-400)}`,
            FailureType.CheckoutFailed,
          );
        }
        const r = await runProcess(
          'git',
          ['-C', dir, 'merge-base', '--is-ancestor', input.ancestor, input.descendant],
          { env },
        );
        if (r.exitCode === 0) return true;
        if (r.exitCode === 1) return false;
        throw new Error(`git merge-base failed: ${r.output.trim().slice(-400)}`);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
