// Commit ancestry, asked of git and never inferred from arrival order or build numbers: pushes
// can arrive out of order, and a deploy must never replace a commit with one of its ancestors.
// Each call fetches the two commits (with history) into a fresh bare repository: cheap for local
// and GitHub remotes alike, and no shared cache to lock between concurrent activities.
//
// History moves: a force-push drops commits, a repository is recreated or served from a new URL.
// `commitRelation` tells that apart from an outage: when the fetch fails but the remote answers
// (`git ls-remote`), each commit is fetched alone, and one the remote no longer has is reported as
// missing (the deploy then proceeds and says so) instead of failing as if the remote were down.
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

export type CommitRelation = 'ancestor' | 'not-ancestor' | 'ancestor-missing' | 'descendant-missing';

export function createGitActivities(deps: { workspaceRoot?: string; gitAuth?: GitAuth }) {
  const activities = {
    /** How `ancestor` relates to `descendant`, or which of the two the remote no longer has.
     * Throws a retryable CheckoutFailed only when the remote itself cannot be reached. */
    async commitRelation(input: IsAncestorInput): Promise<{ relation: CommitRelation }> {
      for (const sha of [input.ancestor, input.descendant]) {
        if (!SHA.test(sha))
          throw ApplicationFailure.nonRetryable(
            `not a full commit sha: ${JSON.stringify(sha)}`,
            FailureType.CommitNotFound,
          );
      }
      if (input.ancestor === input.descendant) return { relation: 'ancestor' };
      const root = deps.workspaceRoot ?? path.join(os.tmpdir(), 'conveyor-work');
      fs.mkdirSync(root, { recursive: true });
      const dir = fs.mkdtempSync(path.join(root, 'ancestry-'));
      const env = { ...gitBaseEnv(), ...(await deps.gitAuth?.(input.cloneUrl)) };
      const fetch = (shas: string[]) =>
        runProcess('git', ['-C', dir, 'fetch', '--quiet', '--filter=blob:none', '--', input.cloneUrl, ...shas], {
          env,
        });
      try {
        await runChecked('git', ['init', '--quiet', '--bare', dir], { env });
        const both = await fetch([input.ancestor, input.descendant]);
        if (both.exitCode !== 0) {
          const reach = await runProcess('git', ['ls-remote', '--heads', '--', input.cloneUrl], { env });
          if (reach.exitCode !== 0) {
            throw ApplicationFailure.retryable(
              `cannot reach ${input.cloneUrl}: ${reach.output.trim().slice(-400)}`,
              FailureType.CheckoutFailed,
            );
          }
          if ((await fetch([input.descendant])).exitCode !== 0) return { relation: 'descendant-missing' };
          if ((await fetch([input.ancestor])).exitCode !== 0) return { relation: 'ancestor-missing' };
          throw ApplicationFailure.retryable(
            `cannot fetch ${input.ancestor} and ${input.descendant} from ${input.cloneUrl}: ${both.output.trim().slice(-400)}`,
            FailureType.CheckoutFailed,
          );
        }
        const r = await runProcess(
          'git',
          ['-C', dir, 'merge-base', '--is-ancestor', input.ancestor, input.descendant],
          {
            env,
          },
        );
        if (r.exitCode === 0) return { relation: 'ancestor' };
        if (r.exitCode === 1) return { relation: 'not-ancestor' };
        throw new Error(`git merge-base failed: ${r.output.trim().slice(-400)}`);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },

    /** True when `ancestor` is reachable from `descendant` (a commit is its own ancestor). Kept for
     * runs recorded before commitRelation; a commit the remote no longer has is not an ancestor. */
    async isAncestor(input: IsAncestorInput): Promise<boolean> {
      return (await activities.commitRelation(input)).relation === 'ancestor';
    },
  };
  return activities;
}
