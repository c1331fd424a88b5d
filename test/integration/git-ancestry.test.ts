// Commit ancestry against real git remotes: an ancestor, a commit that is not one, a commit the
// remote no longer has (told apart from a remote that cannot be reached), and the legacy boolean.
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { runChecked } from '../../activities/exec/process';
import { createGitActivities } from '../../activities/git/ancestry';
import { commitSample } from '../../cli/demo/sample-repo';
import { tempDir } from '../helpers/stack';

describe('commitRelation', () => {
  const git = createGitActivities({ workspaceRoot: tempDir('ancestry-work') });

  it('tells ancestors, other commits, vanished commits and unreachable remotes apart', async () => {
    const dir = tempDir('ancestry');
    const bare = path.join(dir, 'repo.git');
    const a = await commitSample(bare, path.join(dir, 'work'), { message: 'a' });
    const b = await commitSample(bare, path.join(dir, 'work'), { message: 'b' });
    const side = await commitSample(bare, path.join(dir, 'work'), { branch: 'side', message: 'side' });
    expect(await git.commitRelation({ cloneUrl: bare, ancestor: a.sha, descendant: b.sha })).toEqual({
      relation: 'ancestor',
    });
    expect(await git.commitRelation({ cloneUrl: bare, ancestor: b.sha, descendant: a.sha })).toEqual({
      relation: 'not-ancestor',
    });
    expect(await git.isAncestor({ cloneUrl: bare, ancestor: a.sha, descendant: b.sha })).toBe(true);

    // The side branch is deleted and its commit pruned: the remote answers, but no longer has it.
    await runChecked('git', ['-C', bare, 'update-ref', '-d', 'refs/heads/side']);
    await runChecked('git', ['-C', bare, 'reflog', 'expire', '--expire=now', '--all']);
    await runChecked('git', ['-C', bare, 'gc', '--quiet', '--prune=now']);
    expect(await git.commitRelation({ cloneUrl: bare, ancestor: b.sha, descendant: side.sha })).toEqual({
      relation: 'descendant-missing',
    });
    expect(await git.commitRelation({ cloneUrl: bare, ancestor: side.sha, descendant: b.sha })).toEqual({
      relation: 'ancestor-missing',
    });
    expect(await git.isAncestor({ cloneUrl: bare, ancestor: b.sha, descendant: side.sha })).toBe(false);

    // A remote that cannot be reached is an outage: retryable, not "missing".
    const err = await git
      .commitRelation({ cloneUrl: path.join(dir, 'gone.git'), ancestor: a.sha, descendant: b.sha })
      .catch((e: unknown) => e as ApplicationFailure);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('CheckoutFailed');
    expect((err as ApplicationFailure).nonRetryable).toBe(false);
  });
});
