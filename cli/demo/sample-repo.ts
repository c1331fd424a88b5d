// The demo's sample project as a local git repository: a bare repository (what conveyor.yml's
// cloneUrl points at) and a work tree that pushes to it. Each call commits the sample files plus
// a marker, so every demo run is a new commit and a new pipeline.
import fs from 'node:fs';
import path from 'node:path';
import { runChecked } from '../../activities/exec/process';

export const SAMPLE_DIR = path.join(__dirname, 'sample');

export interface PushedCommit {
  sha: string;
  before: string;
  branch: string;
  message: string;
}

const GIT_IDENTITY = [
  '-c',
  'user.name=Conveyor Demo',
  '-c',
  'user.email=demo@conveyor.invalid',
  '-c',
  'commit.gpgsign=false',
];

async function git(cwd: string, args: string[]): Promise<string> {
  return (await runChecked('git', [...GIT_IDENTITY, ...args], { cwd })).trim();
}

export async function ensureBareRepository(bare: string): Promise<void> {
  if (fs.existsSync(path.join(bare, 'HEAD'))) return;
  fs.mkdirSync(bare, { recursive: true });
  await git(bare, ['init', '--quiet', '--bare', '--initial-branch=main']);
}

/**
 * Commits the sample project (with `mutate` applied to the work tree) to `branch` and pushes it.
 * Returns the new head and the previous one, as a GitHub push payload names them.
 */
export async function commitSample(
  bare: string,
  work: string,
  opts: { branch?: string; message: string; mutate?: (dir: string) => void },
): Promise<PushedCommit> {
  const branch = opts.branch ?? 'main';
  await ensureBareRepository(bare);
  if (!fs.existsSync(path.join(work, '.git'))) {
    fs.mkdirSync(work, { recursive: true });
    await git(work, ['init', '--quiet', '--initial-branch=main']);
    await git(work, ['remote', 'add', 'origin', bare]);
  }
  const remoteHas = (await runChecked('git', ['ls-remote', bare, `refs/heads/${branch}`])).trim();
  const before = remoteHas ? remoteHas.split(/\s+/)[0] : '0'.repeat(40);
  if (remoteHas) {
    await git(work, ['fetch', '--quiet', 'origin', branch]);
    await git(work, ['checkout', '--quiet', '-B', branch, 'FETCH_HEAD']);
  } else {
    await git(work, ['checkout', '--quiet', '--orphan', branch]).catch(() =>
      git(work, ['checkout', '--quiet', '-B', branch]),
    );
  }
  fs.cpSync(SAMPLE_DIR, work, { recursive: true });
  for (const f of ['FAIL_UNIT']) fs.rmSync(path.join(work, f), { force: true });
  fs.writeFileSync(path.join(work, 'CHANGES'), `${opts.message}\n`, { flag: 'a' });
  opts.mutate?.(work);
  await git(work, ['add', '-A']);
  await git(work, ['commit', '--quiet', '-m', opts.message]);
  await git(work, ['push', '--quiet', 'origin', `HEAD:refs/heads/${branch}`]);
  return { sha: await git(work, ['rev-parse', 'HEAD']), before, branch, message: opts.message };
}
