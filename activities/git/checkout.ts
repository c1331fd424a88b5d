// Checkout of one exact commit into a fresh workspace. The URL comes from trusted config and the
// sha is validated; both travel as argv, never through a shell.
import fs from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../common/failures';
import { runChecked, runProcess } from '../exec/process';

const SHA = /^[0-9a-f]{40}$/;

export async function checkout(cloneUrl: string, sha: string, dir: string, signal?: AbortSignal): Promise<string> {
  if (!SHA.test(sha)) {
    throw ApplicationFailure.nonRetryable(`not a full commit sha: ${JSON.stringify(sha)}`, FailureType.CheckoutFailed);
  }
  fs.mkdirSync(dir, { recursive: true });
  const git = (args: string[]) => runChecked('git', ['-C', dir, ...args], { signal, env: gitEnv() });
  await git(['init', '--quiet']);
  // A shallow fetch of the exact sha is the cheap path (GitHub and local repositories allow it);
  // a full fetch is the fallback for servers that refuse unadvertised objects.
  const shallow = await runProcess('git', ['-C', dir, 'fetch', '--quiet', '--depth', '1', '--', cloneUrl, sha], {
    signal,
    env: gitEnv(),
  });
  if (shallow.exitCode !== 0) {
    const full = await runProcess(
      'git',
      ['-C', dir, 'fetch', '--quiet', '--', cloneUrl, '+refs/heads/*:refs/remotes/origin/*'],
      {
        signal,
        env: gitEnv(),
      },
    );
    if (full.exitCode !== 0) {
      // Unreachable remotes are worth retrying; the policy's attempts bound it.
      throw ApplicationFailure.retryable(
        `cannot fetch ${cloneUrl}: ${full.output.trim().slice(-500)}`,
        FailureType.CheckoutFailed,
      );
    }
  }
  const co = await runProcess('git', ['-C', dir, 'checkout', '--quiet', '--detach', sha], { signal, env: gitEnv() });
  if (co.exitCode !== 0) {
    throw ApplicationFailure.nonRetryable(
      `commit ${sha} is not in ${cloneUrl}: ${co.output.trim().slice(-500)}`,
      FailureType.CheckoutFailed,
    );
  }
  return (await git(['rev-parse', 'HEAD'])).trim();
}

function gitEnv(): NodeJS.ProcessEnv {
  return { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_NOSYSTEM: '1' };
}

export function workspaceDir(root: string, id: string): string {
  return path.join(root, id.replace(/[^A-Za-z0-9._-]+/g, '_'));
}
