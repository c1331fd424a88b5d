// The release: tag `v<version>` (annotated) at exactly the tested sha and cut the next patch branch
// `v<major>.<minor>.<patch+1>` with VERSION bumped in one commit, as the 2015 chain did; the
// branch of the version just released (`v<version>`), if any, is removed. Idempotent: a tag that
// already points at the sha is success, a tag at another sha is a clear failure before anything
// changes, and an existing next branch is left alone.
// Credentials: a token (env var named in config) for HTTPS remotes goes to git through
// GIT_CONFIG_* environment variables as an Authorization header scoped to the remote's origin
// (activities/git/auth.ts) — never in argv, a URL or a log.
// Liveness: it heartbeats (each git command, and every few seconds while one runs), so a worker
// that dies in the middle is found by the stage's heartbeat timeout, not its 10-minute
// start-to-close; each git command has GIT_TIMEOUT_MS, well inside that, and cancellation kills it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../common/failures';
import { runProcess } from '../exec/process';
import { activityScope } from '../repository/activity-scope';
import { gitBaseEnv, tokenHeaderEnv, type GitAuth } from './auth';

const SHA = /^[0-9a-f]{40}$/;
const VERSION = /^(\d+)\.(\d+)\.(\d+)$/;
/** One git command (a fetch or a push of a large repository included); the activity has 10 minutes. */
export const GIT_TIMEOUT_MS = 4 * 60_000;

export interface ReleaseInput {
  cloneUrl: string;
  sha: string;
  /** The release branch the sha was pushed to (e.g. v1.2). */
  branch: string;
}

export interface ReleaseResult {
  version: string;
  tag: string;
  tagCreated: boolean;
  nextBranch: string;
  nextBranchCreated: boolean;
  removedBranch?: string;
}

export function createReleaseActivities(deps: {
  workspaceRoot?: string;
  token: () => string | undefined;
  gitAuth?: GitAuth;
}) {
  return {
    async releaseCommit(input: ReleaseInput): Promise<ReleaseResult> {
      if (!SHA.test(input.sha))
        throw ApplicationFailure.nonRetryable(`not a full commit sha: ${input.sha}`, FailureType.CheckoutFailed);
      const root = deps.workspaceRoot ?? path.join(os.tmpdir(), 'conveyor-work');
      fs.mkdirSync(root, { recursive: true });
      const scope = activityScope();
      const dir = fs.mkdtempSync(path.join(root, 'release-'));
      // Pushing needs the GitHub token (HTTPS remotes); other remotes use the repository's checkout
      // credential (an SSH deploy key with write access).
      const token = deps.token();
      const env = {
        ...gitBaseEnv(),
        ...(token && /^https:\/\//i.test(input.cloneUrl)
          ? tokenHeaderEnv(input.cloneUrl, token)
          : await deps.gitAuth?.(input.cloneUrl)),
      };
      const git = async (args: string[], okCodes = [0]) => {
        scope.heartbeat({ phase: `git ${args[0]}` });
        const r = await runProcess('git', ['-C', dir, ...args], {
          env,
          signal: scope.signal,
          timeoutMs: GIT_TIMEOUT_MS,
        });
        if (r.cancelled) scope.checkCancelled();
        if (r.timedOut) {
          throw ApplicationFailure.retryable(
            `git ${args[0]} did not finish in ${GIT_TIMEOUT_MS / 1000} s`,
            FailureType.ReleaseFailed,
          );
        }
        if (!okCodes.includes(r.exitCode ?? -1)) {
          // The token travels only in env; the output cannot contain it, but never echo env.
          throw ApplicationFailure.retryable(
            `git ${args[0]} failed (exit ${r.exitCode}): ${r.output.trim().slice(-500)}`,
            FailureType.ReleaseFailed,
          );
        }
        return r.output.trim();
      };
      try {
        await git(['init', '--quiet']);
        await git(['fetch', '--quiet', '--', input.cloneUrl, input.sha]);
        const version = (await git(['show', `${input.sha}:VERSION`])).trim();
        const m = VERSION.exec(version);
        if (!m)
          throw ApplicationFailure.nonRetryable(
            `VERSION at ${input.sha} is ${JSON.stringify(version)}, not <major>.<minor>.<patch>`,
            FailureType.ReleaseFailed,
          );
        const tag = `v${version}`;
        const next = `${m[1]}.${m[2]}.${Number(m[3]) + 1}`;
        const nextBranch = `v${next}`;
        const remote = parseLsRemote(
          await git([
            'ls-remote',
            '--',
            input.cloneUrl,
            `refs/tags/${tag}`,
            `refs/tags/${tag}^{}`,
            `refs/heads/${nextBranch}`,
            `refs/heads/${tag}`,
          ]),
        );
        const tagAt = remote.get(`refs/tags/${tag}^{}`) ?? remote.get(`refs/tags/${tag}`);
        if (tagAt && tagAt !== input.sha) {
          throw ApplicationFailure.nonRetryable(
            `tag ${tag} already exists at ${tagAt}, not at the tested ${input.sha}: nothing changed`,
            FailureType.ReleaseConflict,
          );
        }
        let tagCreated = false;
        if (!tagAt) {
          await git([
            '-c',
            'user.name=Conveyor',
            '-c',
            'user.email=conveyor@localhost',
            'tag',
            '-a',
            tag,
            '-m',
            `Release ${version}`,
            input.sha,
          ]);
          await git(['push', '--quiet', '--', input.cloneUrl, `refs/tags/${tag}`]);
          tagCreated = true;
        }
        let nextBranchCreated = false;
        if (!remote.has(`refs/heads/${nextBranch}`)) {
          await git(['checkout', '--quiet', '--detach', input.sha]);
          fs.writeFileSync(path.join(dir, 'VERSION'), `${next}\n`);
          await git(['add', 'VERSION']);
          await git([
            '-c',
            'user.name=Conveyor',
            '-c',
            'user.email=conveyor@localhost',
            '-c',
            'commit.gpgsign=false',
            'commit',
            '--quiet',
            '-m',
            `Bump version to ${next}`,
          ]);
          await git(['push', '--quiet', '--', input.cloneUrl, `HEAD:refs/heads/${nextBranch}`]);
          nextBranchCreated = true;
        }
        let removedBranch: string | undefined;
        if (remote.has(`refs/heads/${tag}`) && tag !== input.branch) {
          await git(['push', '--quiet', '--', input.cloneUrl, `:refs/heads/${tag}`]);
          removedBranch = tag;
        }
        return { version, tag, tagCreated, nextBranch, nextBranchCreated, removedBranch };
      } finally {
        scope.close();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

function parseLsRemote(out: string): Map<string, string> {
  const refs = new Map<string, string>();
  for (const line of out.split('\n')) {
    const [sha, ref] = line.trim().split(/\s+/);
    if (sha && ref) refs.set(ref, sha);
  }
  return refs;
}
