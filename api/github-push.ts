// What a verified GitHub push means for Conveyor, in two steps so the spool can keep the first:
//   pushFacts:   the delivery's facts (repository, branch, commit, metadata), or why it is ignored;
//   decideFacts: against a config — is the repository configured, which branch rule matches —
//                giving the pipeline input, whose commands come from that config only.
// The webhook does both at once (decidePush); the spool keeps only the facts and its drainer runs
// decideFacts again with the config current when it drains. A signed payload whose fields have
// the wrong types is refused (400), not trusted: the signature says who sent it, not that it is
// well formed. Pure, so every case is a unit test.
import { z } from 'zod';
import { findBranchRule } from '../common/branch-rules';
import type { CommitInfo, PipelineInput } from '../common/types';
import { findRepository, formatPath, repositorySpec, type ConveyorConfig } from '../config/conveyor';

/** The fields of GitHub's push payload that Conveyor reads, with the types GitHub documents
 * (https://docs.github.com/webhooks/webhook-events-and-payloads#push); others are not looked at. */
const pushPayloadSchema = z.object({
  ref: z.string().optional(),
  after: z.string().optional(),
  deleted: z.boolean().optional(),
  compare: z.string().nullish(),
  repository: z.object({ full_name: z.string().optional() }).optional(),
  head_commit: z
    .object({
      id: z.string().optional(),
      message: z.string().nullish(),
      timestamp: z.string().nullish(),
      author: z.object({ name: z.string().nullish(), username: z.string().nullish() }).nullish(),
    })
    .nullish(),
  pusher: z.object({ name: z.string().nullish() }).nullish(),
});

export type PushPayload = z.input<typeof pushPayloadSchema>;

/** What the spool keeps of a push: facts from the delivery, no commands, no config. */
export interface PushFacts {
  /** GitHub full_name as the payload gave it. */
  repository: string;
  branch: string;
  sha: string;
  commit: CommitInfo;
  deliveryId?: string;
}

export type FactsResult =
  { action: 'facts'; facts: PushFacts } | { action: 'ignore'; reason: string } | { action: 'reject'; reason: string };

export type PushDecision =
  | { action: 'start'; input: PipelineInput; facts: PushFacts }
  | { action: 'ignore'; reason: string }
  | { action: 'reject'; reason: string };

export const SHA = /^[0-9a-f]{40}$/;

/** Checks the types of the fields Conveyor reads: a reason to refuse, or the typed payload. */
export function parsePushPayload(payload: unknown): { ok: true; push: PushPayload } | { ok: false; reason: string } {
  const result = pushPayloadSchema.safeParse(payload);
  if (result.success) return { ok: true, push: result.data };
  const problems = result.error.issues.map((i) => `${formatPath(i.path) || '(payload)'}: ${i.message}`);
  return {
    ok: false,
    reason:
      `malformed push payload (${problems.join('; ')}): ` +
      'send GitHub push events as documented at https://docs.github.com/webhooks/webhook-events-and-payloads#push',
  };
}

/** The delivery's facts, or why the push is not a commit to build (tags, deletions, no head). */
export function pushFacts(payload: unknown, deliveryId?: string): FactsResult {
  const parsed = parsePushPayload(payload);
  if (!parsed.ok) return { action: 'reject', reason: parsed.reason };
  const p = parsed.push;
  const name = p.repository?.full_name;
  if (!name) return { action: 'ignore', reason: 'ignored: payload names no repository' };
  const ref = p.ref ?? '';
  if (ref.startsWith('refs/tags/')) return { action: 'ignore', reason: 'ignored: tag push' };
  if (!ref.startsWith('refs/heads/'))
    return { action: 'ignore', reason: `ignored: not a branch ref (${ref || 'none'})` };
  const branch = ref.slice('refs/heads/'.length);
  if (p.deleted) return { action: 'ignore', reason: 'ignored: branch deleted' };
  const sha = p.after ?? '';
  if (!SHA.test(sha) || /^0+$/.test(sha)) return { action: 'ignore', reason: 'ignored: push has no head commit' };
  const head = p.head_commit ?? undefined;
  const commit: CommitInfo = {
    message: (head?.message ?? '').slice(0, 2000),
    author: head?.author?.username ?? head?.author?.name ?? p.pusher?.name ?? '',
    compareUrl: p.compare ?? '',
  };
  if (head?.timestamp) commit.timestamp = head.timestamp;
  return {
    action: 'facts',
    facts: { repository: name, branch, sha, commit, ...(deliveryId ? { deliveryId } : {}) },
  };
}

/** The facts against a config: the pipeline input from that config, or why nothing starts. */
export function decideFacts(config: ConveyorConfig, facts: PushFacts): PushDecision {
  const repo = findRepository(config, facts.repository);
  if (!repo) return { action: 'ignore', reason: `ignored: repository ${facts.repository} is not configured` };
  const rule = findBranchRule(repo.branches, facts.branch);
  if (!rule) return { action: 'ignore', reason: 'ignored: branch not monitored' };
  return {
    action: 'start',
    facts,
    input: {
      repository: repositorySpec(config, repo, rule),
      branch: facts.branch,
      sha: facts.sha,
      commit: { ...facts.commit },
      deliveryId: facts.deliveryId,
    },
  };
}

/** A delivery decided now: malformed (reject), ignored with a reason, or a pipeline to start. */
export function decidePush(config: ConveyorConfig, payload: unknown, deliveryId?: string): PushDecision {
  const parsed = parsePushPayload(payload);
  if (!parsed.ok) return { action: 'reject', reason: parsed.reason };
  // An unconfigured repository is named as such before anything else about its push.
  const name = parsed.push.repository?.full_name;
  if (name && !findRepository(config, name)) {
    return { action: 'ignore', reason: `ignored: repository ${name} is not configured` };
  }
  const facts = pushFacts(parsed.push, deliveryId);
  if (facts.action !== 'facts') return facts;
  return decideFacts(config, facts.facts);
}
