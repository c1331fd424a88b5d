// Checkout of one exact commit into a fresh workspace. The URL comes from trusted config and the
// sha is validated; both travel as argv, never through a shell. A private repository's credential
// reaches git through the environment only (activities/git/auth.ts): the fetch is by URL, so
// nothing of it is written to the checkout's .git/config, which the step can read.
//
// Failures are told apart: a remote that cannot be reached (network, server, credential refused)
// is retryable, CheckoutFailed; a commit the remote does not have is not, CommitNotFound.
import fs from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../common/failures';
import { runChecked, runProcess } from '../exec/process';
import { gitBaseEnv, type GitAuth } from './auth';

const SHA = /^[0-9a-f]{40}$/;

export async function checkout(
  cloneUrl: string,
  sha: string,
  dir: string,
  signal?: AbortSignal,
  auth?: GitAuth,
): Promise<string> {
  if (!SHA.test(sha)) {
    throw ApplicationFailure.nonRetryable(`not a full commit sha: ${JSON.stringify(sha)}`, FailureType.CommitNotFound);
  }
  fs.mkdirSync(dir, { recursive: true });
  const env = { ...gitBaseEnv(), ...(await auth?.(cloneUrl)) };
  const git = (args: string[]) => runChecked('git', ['-C', dir, ...args], { signal, env });
  await git(['init', '--quiet']);
  // A shallow fetch of the exact sha is the cheap path (GitHub and local repositories allow it);
  // a full fetch is the fallback for servers that refuse unadvertised objects.
  const shallow = await runProcess('git', ['-C', dir, 'fetch', '--quiet', '--depth', '1', '--', cloneUrl, sha], {
    signal,
    env,
  });
  if (shallow.exitCode !== 0) {
    const full = await runProcess(
      'git',
      ['-C', dir, 'fetch', '--quiet', '--', cloneUrl, '+refs/heads/*:refs/remotes/origin/*'],
      { signal, env },
    );
    if (full.exitCode !== 0) {
      // Unreachable remotes are worth retrying; the policy's attempts bound it.
      throw ApplicationFailure.retryable(
        `cannot fetch ${cloneUrl}: ${full.output.trim().slice(-500)}`,
        FailureType.CheckoutFailed,
      );
    }
  }
  const co = await runProcess('git', ['-C', dir, 'checkout', '--quiet', '--detach', sha], { signal, env });
  if (co.exitCode !== 0) {
    throw ApplicationFailure.nonRetryable(
      `commit ${sha} is not in ${cloneUrl}: ${co.output.trim().slice(-500)}`,
      FailureType.CommitNotFound,
    );
  }
  return (await git(['rev-parse', 'HEAD'])).trim();
}

export function workspaceDir(root: string, id: string): string {
  return path.join(root, id.replace(/[^A-Za-z0-9._-]+/g, '_'));
}
