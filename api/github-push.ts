// What a verified GitHub push means for Conveyor: start a pipeline for a monitored branch of a
// configured repository, or ignore it with a reason. Pure, so every case is a unit test.
import { findBranchRule } from '../common/branch-rules';
import type { PipelineInput } from '../common/types';
import { findRepository, repositorySpec, type ConveyorConfig } from '../config/conveyor';

/** The fields of GitHub's push payload that Conveyor reads. */
export interface PushPayload {
  ref?: string;
  after?: string;
  deleted?: boolean;
  compare?: string;
  repository?: { full_name?: string };
  head_commit?: {
    id?: string;
    message?: string;
    timestamp?: string;
    author?: { name?: string; username?: string };
  } | null;
  pusher?: { name?: string };
}

export type PushDecision = { action: 'start'; input: PipelineInput } | { action: 'ignore'; reason: string };

const SHA = /^[0-9a-f]{40}$/;

export function decidePush(config: ConveyorConfig, payload: PushPayload, deliveryId?: string): PushDecision {
  const name = payload.repository?.full_name;
  if (!name) return { action: 'ignore', reason: 'ignored: payload names no repository' };
  const repo = findRepository(config, name);
  if (!repo) return { action: 'ignore', reason: `ignored: repository ${name} is not configured` };
  const ref = payload.ref ?? '';
  if (ref.startsWith('refs/tags/')) return { action: 'ignore', reason: 'ignored: tag push' };
  if (!ref.startsWith('refs/heads/'))
    return { action: 'ignore', reason: `ignored: not a branch ref (${ref || 'none'})` };
  const branch = ref.slice('refs/heads/'.length);
  if (payload.deleted) return { action: 'ignore', reason: 'ignored: branch deleted' };
  const sha = payload.after ?? '';
  if (!SHA.test(sha) || /^0+$/.test(sha)) return { action: 'ignore', reason: 'ignored: push has no head commit' };
  const rule = findBranchRule(repo.branches, branch);
  if (!rule) return { action: 'ignore', reason: 'ignored: branch not monitored' };
  const head = payload.head_commit ?? undefined;
  return {
    action: 'start',
    input: {
      repository: repositorySpec(config, repo, rule),
      branch,
      sha,
      commit: {
        message: (head?.message ?? '').slice(0, 2000),
        author: head?.author?.username ?? head?.author?.name ?? payload.pusher?.name ?? '',
        compareUrl: payload.compare ?? '',
        timestamp: head?.timestamp,
      },
      deliveryId,
    },
  };
}
