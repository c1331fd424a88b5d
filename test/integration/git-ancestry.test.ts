// Commit ancestry against real git remotes: an ancestor, a commit that is not one, a commit the
// remote no longer has (told apart from a remote that cannot be reached), and the legacy boolean.
// descendantRelations: the same answers for several descendants at once, from one fetch.
import fs from 'node:fs';
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

describe('descendantRelations', () => {
  /** Every `git fetch` the activities start, from git's own trace (GIT_TRACE, through the auth hook). */
  let trace: string;
  const git = createGitActivities({
    workspaceRoot: tempDir('ancestry-batch-work'),
    gitAuth: () => Promise.resolve({ GIT_TRACE: trace }),
  });
  const fetches = () =>
    fs.existsSync(trace)
      ? fs
          .readFileSync(trace, 'utf8')
          .split('\n')
          .filter((l) => / git fetch /.test(l)).length
      : 0;

  /** main: a → b → c; branch side: one unrelated commit; branch gone: two commits, then pruned. */
  async function remote() {
    const dir = tempDir('ancestry-batch');
    trace = path.join(dir, 'git-trace.log');
    const bare = path.join(dir, 'repo.git');
    const work = path.join(dir, 'work');
    const a = await commitSample(bare, work, { message: 'a' });
    const b = await commitSample(bare, work, { message: 'b' });
    const c = await commitSample(bare, work, { message: 'c' });
    const side = await commitSample(bare, work, { branch: 'side', message: 'side' });
    const gone1 = await commitSample(bare, work, { branch: 'gone', message: 'gone 1' });
    const gone2 = await commitSample(bare, work, { branch: 'gone', message: 'gone 2' });
    await runChecked('git', ['-C', bare, 'update-ref', '-d', 'refs/heads/gone']);
    await runChecked('git', ['-C', bare, 'reflog', 'expire', '--expire=now', '--all']);
    await runChecked('git', ['-C', bare, 'gc', '--quiet', '--prune=now']);
    return { dir, bare, a: a.sha, b: b.sha, c: c.sha, side: side.sha, gone1: gone1.sha, gone2: gone2.sha };
  }

  it('answers for every descendant, in order, from one fetch, as commitRelation answers each pair', async () => {
    const r = await remote();
    const descendants = [r.c, r.b, r.side, r.a, r.gone2, r.c];
    fs.rmSync(trace, { force: true });
    const { relations } = await git.descendantRelations({ cloneUrl: r.bare, ancestor: r.a, descendants });
    expect(relations).toEqual(['ancestor', 'ancestor', 'not-ancestor', 'ancestor', 'descendant-missing', 'ancestor']);
    // One fetch of all of them; the missing one then costs one fetch alone per commit.
    expect(fetches()).toBe(1 + 4 + 1);

    fs.rmSync(trace, { force: true });
    const present = await git.descendantRelations({ cloneUrl: r.bare, ancestor: r.b, descendants: [r.a, r.c, r.side] });
    expect(present).toEqual({ relations: ['not-ancestor', 'ancestor', 'not-ancestor'] });
    expect(fetches()).toBe(1);

    // The ancestor gone: every descendant the remote has says so; a missing descendant still says its own.
    const orphaned = await git.descendantRelations({
      cloneUrl: r.bare,
      ancestor: r.gone1,
      descendants: [r.c, r.gone2],
    });
    expect(orphaned).toEqual({ relations: ['ancestor-missing', 'descendant-missing'] });
    expect(await git.descendantRelations({ cloneUrl: r.bare, ancestor: r.gone1, descendants: [r.c, r.side] })).toEqual({
      relations: ['ancestor-missing', 'ancestor-missing'],
    });

    for (const [ancestor, list] of [
      [r.a, descendants],
      [r.gone1, [r.c, r.gone2, r.gone1]],
    ] as const) {
      const batch = await git.descendantRelations({ cloneUrl: r.bare, ancestor, descendants: [...list] });
      const single = [];
      for (const descendant of list)
        single.push((await git.commitRelation({ cloneUrl: r.bare, ancestor, descendant })).relation);
      expect(batch.relations).toEqual(single);
    }

    // Only the commit itself, or nothing: no git at all.
    fs.rmSync(trace, { force: true });
    expect(await git.descendantRelations({ cloneUrl: r.bare, ancestor: r.a, descendants: [r.a] })).toEqual({
      relations: ['ancestor'],
    });
    expect(await git.descendantRelations({ cloneUrl: r.bare, ancestor: r.a, descendants: [] })).toEqual({
      relations: [],
    });
    expect(fetches()).toBe(0);
  });

  it('fails retryably when the remote cannot be reached, and refuses what is not a list of full shas', async () => {
    const r = await remote();
    const failure = (p: Promise<unknown>) => p.then(() => undefined).catch((e: unknown) => e as ApplicationFailure);

    const unreachable = await failure(
      git.descendantRelations({ cloneUrl: path.join(r.dir, 'nowhere.git'), ancestor: r.a, descendants: [r.b, r.c] }),
    );
    expect(unreachable).toBeInstanceOf(ApplicationFailure);
    expect(unreachable).toMatchObject({ type: 'CheckoutFailed', nonRetryable: false });
    expect(unreachable?.message).toMatch(/^cannot reach /);

    const short = await failure(
      git.descendantRelations({ cloneUrl: r.bare, ancestor: r.a, descendants: [r.b, r.c.slice(0, 12)] }),
    );
    expect(short).toMatchObject({
      type: 'CommitNotFound',
      nonRetryable: true,
      message: `not a full commit sha: "${r.c.slice(0, 12)}"`,
    });
    const tooMany = await failure(
      git.descendantRelations({ cloneUrl: r.bare, ancestor: r.a, descendants: Array<string>(21).fill(r.b) }),
    );
    expect(tooMany).toMatchObject({ type: 'BadInput', nonRetryable: true });
    // Twenty is allowed, and repeats cost nothing more.
    expect(
      await git.descendantRelations({ cloneUrl: r.bare, ancestor: r.a, descendants: Array<string>(20).fill(r.b) }),
    ).toEqual({ relations: Array<string>(20).fill('ancestor') });
  });
});
