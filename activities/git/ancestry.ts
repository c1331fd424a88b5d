// Commit ancestry, asked of git and never inferred from arrival order or build numbers: pushes
// can arrive out of order, and a deploy must never replace a commit with one of its ancestors.
// Each call fetches the commits (with history) into a fresh bare repository: cheap for local
// and GitHub remotes alike, and no shared cache to lock between concurrent activities.
// `descendantRelations` asks about one ancestor and several descendants with a single fetch (the
// pipeline's check of a branch's earlier builds, on the path from test to package); `commitRelation`
// is the same with one descendant.
//
// History moves: a force-push drops commits, a repository is recreated or served from a new URL.
// Both tell that apart from an outage: when the fetch fails but the remote answers
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

/** More descendants than this in one call is a caller's bug (the pipeline asks about at most 5). */
export const MAX_DESCENDANTS = 20;

export interface IsAncestorInput {
  cloneUrl: string;
  ancestor: string;
  descendant: string;
}

export interface DescendantRelationsInput {
  cloneUrl: string;
  ancestor: string;
  descendants: string[];
}

export type CommitRelation = 'ancestor' | 'not-ancestor' | 'ancestor-missing' | 'descendant-missing';

export function createGitActivities(deps: { workspaceRoot?: string; gitAuth?: GitAuth }) {
  /** Relations of `ancestor` to each of `descendants`, in their order, shas already checked. For
   * every pair, the answer `commitRelation` gives: a missing descendant wins over a missing ancestor. */
  async function relationsOf({ cloneUrl, ancestor, descendants }: DescendantRelationsInput): Promise<CommitRelation[]> {
    const asked = [...new Set(descendants.filter((d) => d !== ancestor))];
    if (asked.length === 0) return descendants.map(() => 'ancestor');
    const root = deps.workspaceRoot ?? path.join(os.tmpdir(), 'conveyor-work');
    fs.mkdirSync(root, { recursive: true });
    const dir = fs.mkdtempSync(path.join(root, 'ancestry-'));
    const env = { ...gitBaseEnv(), ...(await deps.gitAuth?.(cloneUrl)) };
    const fetch = (shas: string[]) =>
      runProcess('git', ['-C', dir, 'fetch', '--quiet', '--filter=blob:none', '--', cloneUrl, ...shas], { env });
    try {
      await runChecked('git', ['init', '--quiet', '--bare', dir], { env });
      const known = new Map<string, CommitRelation>();
      const all = await fetch([ancestor, ...asked]);
      if (all.exitCode !== 0) {
        const reach = await runProcess('git', ['ls-remote', '--heads', '--', cloneUrl], { env });
        if (reach.exitCode !== 0) {
          throw ApplicationFailure.retryable(
            `cannot reach ${cloneUrl}: ${reach.output.trim().slice(-400)}`,
            FailureType.CheckoutFailed,
          );
        }
        // One at a time, so that each commit the remote has is in the repository for merge-base.
        for (const d of asked) if ((await fetch([d])).exitCode !== 0) known.set(d, 'descendant-missing');
        if (known.size < asked.length && (await fetch([ancestor])).exitCode !== 0)
          for (const d of asked) if (!known.has(d)) known.set(d, 'ancestor-missing');
        if (known.size === 0) {
          throw ApplicationFailure.retryable(
            `cannot fetch ${ancestor} and ${asked.join(', ')} from ${cloneUrl}: ${all.output.trim().slice(-400)}`,
            FailureType.CheckoutFailed,
          );
        }
      }
      for (const d of asked) {
        if (known.has(d)) continue;
        const r = await runProcess('git', ['-C', dir, 'merge-base', '--is-ancestor', ancestor, d], { env });
        if (r.exitCode === 0) known.set(d, 'ancestor');
        else if (r.exitCode === 1) known.set(d, 'not-ancestor');
        else throw new Error(`git merge-base failed: ${r.output.trim().slice(-400)}`);
      }
      return descendants.map((d) => (d === ancestor ? 'ancestor' : known.get(d)!));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  const activities = {
    /** How `ancestor` relates to each of `descendants` (same order), with one fetch of the remote.
     * Throws a retryable CheckoutFailed only when the remote itself cannot be reached. */
    async descendantRelations(input: DescendantRelationsInput): Promise<{ relations: CommitRelation[] }> {
      for (const sha of [input.ancestor, ...input.descendants]) {
        if (!SHA.test(sha))
          throw ApplicationFailure.nonRetryable(
            `not a full commit sha: ${JSON.stringify(sha)}`,
            FailureType.CommitNotFound,
          );
      }
      if (input.descendants.length > MAX_DESCENDANTS)
        throw ApplicationFailure.nonRetryable(
          `${input.descendants.length} descendants asked about in one call; at most ${MAX_DESCENDANTS}: split the list`,
          FailureType.BadInput,
        );
      return { relations: await relationsOf(input) };
    },

    /** How `ancestor` relates to `descendant`, or which of the two the remote no longer has.
     * Throws a retryable CheckoutFailed only when the remote itself cannot be reached. */
    async commitRelation(input: IsAncestorInput): Promise<{ relation: CommitRelation }> {
      const { relations } = await activities.descendantRelations({
        cloneUrl: input.cloneUrl,
        ancestor: input.ancestor,
        descendants: [input.descendant],
      });
      return { relation: relations[0] };
    },

    /** True when `ancestor` is reachable from `descendant` (a commit is its own ancestor). Kept for
     * runs recorded before commitRelation; a commit the remote no longer has is not an ancestor. */
    async isAncestor(input: IsAncestorInput): Promise<boolean> {
      return (await activities.commitRelation(input)).relation === 'ancestor';
    },
  };
  return activities;
}
