// The text of `/conveyor …` (untrusted: whatever a chat user typed) as a command, or why not.
//   status <run | owner/repo/branch>       list [owner/repo[/branch]]
//   approve <run | owner/repo/branch> [comment…]
//   reject <run | owner/repo/branch> [reason…]
//   retry <run | owner/repo/branch> [stage]
//   abort <run | owner/repo/branch> [reason…]
// A run is its workflow ID (`pipeline/<owner>/<repo>/<branch>/<sha>`); owner/repo/branch means the
// branch's latest run that the action applies to. Names are checked against the characters a
// GitHub repository name and a git branch can have before they go near a visibility query.
import type { ChatAction } from '../../common/chat';

export type Target =
  | { kind: 'run'; workflowId: string; repository: string; branch: string }
  | { kind: 'branch'; repository: string; branch: string };

export type Command =
  | { action: 'help' }
  | { action: 'list'; repository?: string; branch?: string }
  | { action: 'status'; target: Target }
  | { action: 'approve'; target: Target; comment?: string }
  | { action: 'reject'; target: Target; reason?: string }
  | { action: 'retry'; target: Target; stage?: string }
  | { action: 'abort'; target: Target; reason?: string };

export type Parsed = { ok: true; command: Command } | { ok: false; reason: string };

export const USAGE =
  'usage: /conveyor status|approve|reject|retry|abort <run ID or owner/repo/branch> [comment, reason or stage], ' +
  '/conveyor list [owner/repo[/branch]]';

const REPO_PART = /^[A-Za-z0-9_.-]{1,100}$/;
const BRANCH = /^[A-Za-z0-9_.+\-/]{1,200}$/;
const SHA = /^[0-9a-f]{40}$/;
const STAGE = /^(test|package|publish|deploy|verify|release|promote)(\/[a-z0-9][a-z0-9-]{0,62})?$/;
const MAX_TEXT = 1000;

/** Which access right a command needs. */
export function rightOf(c: Command): ChatAction | undefined {
  if (c.action === 'help') return undefined;
  return c.action === 'list' ? 'status' : c.action;
}

export function parseCommand(text: string): Parsed {
  if (typeof text !== 'string') return { ok: false, reason: USAGE };
  if (text.length > MAX_TEXT) return { ok: false, reason: `the command is longer than ${MAX_TEXT} characters` };
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000b-\u001f\u007f]/.test(text))
    return { ok: false, reason: 'the command has control characters' };
  const words = text.trim().split(/\s+/).filter(Boolean);
  const [verb, arg, ...rest] = words;
  const tail = rest.join(' ') || undefined;
  switch (verb?.toLowerCase()) {
    case undefined:
    case 'help':
      return { ok: true, command: { action: 'help' } };
    case 'list': {
      if (!arg) return { ok: true, command: { action: 'list' } };
      if (rest.length > 0) return { ok: false, reason: `list takes one argument. ${USAGE}` };
      const parts = arg.split('/');
      if (parts.length === 2 && parts.every((p) => REPO_PART.test(p))) {
        return { ok: true, command: { action: 'list', repository: arg } };
      }
      const t = parseTarget(arg);
      if (!t.ok) return t;
      if (t.target.kind !== 'branch') return { ok: false, reason: 'list takes owner/repo or owner/repo/branch' };
      return { ok: true, command: { action: 'list', repository: t.target.repository, branch: t.target.branch } };
    }
    case 'status':
    case 'approve':
    case 'reject':
    case 'retry':
    case 'abort': {
      const action = verb.toLowerCase() as 'status' | 'approve' | 'reject' | 'retry' | 'abort';
      if (!arg) return { ok: false, reason: `${action} needs a run ID or owner/repo/branch. ${USAGE}` };
      const t = parseTarget(arg);
      if (!t.ok) return t;
      const target = t.target;
      switch (action) {
        case 'status':
          if (tail) return { ok: false, reason: `status takes one argument. ${USAGE}` };
          return { ok: true, command: { action, target } };
        case 'approve':
          return { ok: true, command: { action, target, ...(tail ? { comment: tail } : {}) } };
        case 'reject':
          return { ok: true, command: { action, target, ...(tail ? { reason: tail } : {}) } };
        case 'abort':
          return { ok: true, command: { action, target, ...(tail ? { reason: tail } : {}) } };
        case 'retry':
          if (rest.length > 1) return { ok: false, reason: `retry takes a run and at most one stage. ${USAGE}` };
          if (tail && !STAGE.test(tail)) {
            return { ok: false, reason: `unknown stage ${tail}: test, package[/distro], publish, deploy[/distro], …` };
          }
          return { ok: true, command: { action, target, ...(tail ? { stage: tail } : {}) } };
      }
      break;
    }
  }
  return { ok: false, reason: `unknown command ${verb.slice(0, 40)}. ${USAGE}` };
}

/** A workflow ID (`pipeline/owner/repo/branch…/sha`) or `owner/repo/branch…`. */
export function parseTarget(arg: string): { ok: true; target: Target } | { ok: false; reason: string } {
  const bad = { ok: false as const, reason: `not a run ID or owner/repo/branch: ${arg.slice(0, 200)}` };
  const parts = arg.split('/');
  if (parts[0] === 'pipeline') {
    if (parts.length < 5) return bad;
    const [, owner, repo] = parts;
    const sha = parts[parts.length - 1];
    const branch = parts.slice(3, -1).join('/');
    if (!REPO_PART.test(owner) || !REPO_PART.test(repo) || !SHA.test(sha) || !validBranch(branch)) return bad;
    return { ok: true, target: { kind: 'run', workflowId: arg, repository: `${owner}/${repo}`, branch } };
  }
  if (parts.length < 3) return bad;
  const [owner, repo] = parts;
  const branch = parts.slice(2).join('/');
  if (!REPO_PART.test(owner) || !REPO_PART.test(repo) || !validBranch(branch)) return bad;
  return { ok: true, target: { kind: 'branch', repository: `${owner}/${repo}`, branch } };
}

function validBranch(b: string): boolean {
  return BRANCH.test(b) && !b.includes('..') && !b.startsWith('/') && !b.endsWith('/') && !b.includes('//');
}
