import path from 'node:path';
import { branchMatcher, findBranchRule } from '../../common/branch-rules';
import { branchStateId, pipelineId, stageId } from '../../common/ids';
import { decideFacts, decidePush, pushFacts } from '../../api/github-push';
import { pushPayload } from '../../cli/webhook-client';
import { loadConfig } from '../../config/conveyor';

const config = loadConfig(path.resolve(__dirname, '..', '..', 'conveyor.dev.yml'), {});
const SHA = 'a'.repeat(40);

describe('branch rules', () => {
  it.each([
    ['main', 'main', true],
    ['main', 'main2', false],
    ['v*.*', 'v1.2', true],
    ['v*.*', 'v1.2.3', true],
    ['v*.*', 'feature/v1.2', false],
    ['v?.?', 'v1.2', true],
    ['/^release-\\d+$/', 'release-12', true],
    ['/^release-\\d+$/', 'release-x', false],
  ])('%s matches %s: %s', (rule, branch, expected) => {
    expect(branchMatcher(rule)(branch)).toBe(expected);
  });

  it('takes the first matching rule in file order', () => {
    const rules = [
      { match: 'main', channel: 'unstable' },
      { match: '*', channel: 'other' },
    ];
    expect(findBranchRule(rules, 'main')?.channel).toBe('unstable');
    expect(findBranchRule(rules, 'dev')?.channel).toBe('other');
  });
});

describe('workflow IDs', () => {
  it('follow DESIGN.md', () => {
    const p = pipelineId('acme/widget', 'main', SHA);
    expect(p).toBe(`pipeline/acme/widget/main/${SHA}`);
    expect(stageId(p, 'test')).toBe(`${p}/test`);
    expect(stageId(p, 'package', 'el9', 2)).toBe(`${p}/package/el9#2`);
    expect(branchStateId('acme/widget', 'v1.2')).toBe('branch-state/acme/widget/v1.2');
  });
});

describe('push decisions', () => {
  const push = (over: Record<string, unknown> = {}) => ({
    ...pushPayload({ repository: 'demo/widget', branch: 'main', sha: SHA, message: 'msg', author: 'alice' }),
    ...over,
  });

  it('starts a pipeline for a monitored branch with the rule of that branch', () => {
    const d = decidePush(config, push(), 'delivery-1');
    expect(d.action).toBe('start');
    if (d.action !== 'start') return;
    expect(d.input).toMatchObject({ branch: 'main', sha: SHA, deliveryId: 'delivery-1' });
    expect(d.input.repository).toMatchObject({ name: 'demo/widget', channel: 'unstable', release: false });
    expect(d.input.commit).toMatchObject({ message: 'msg', author: 'alice' });
    const release = decidePush(config, push({ ref: 'refs/heads/v1.2' }));
    expect(release.action === 'start' && release.input.repository).toMatchObject({
      channel: 'stable',
      release: true,
      approval: true,
    });
  });

  it.each([
    [{ ref: 'refs/heads/feature/x' }, 'ignored: branch not monitored'],
    [{ ref: 'refs/tags/v1.2.0' }, 'ignored: tag push'],
    [{ deleted: true, after: '0'.repeat(40) }, 'ignored: branch deleted'],
    [{ repository: { full_name: 'other/repo' } }, 'ignored: repository other/repo is not configured'],
    [{ after: 'not-a-sha' }, 'ignored: push has no head commit'],
  ])('ignores %j', (over, reason) => {
    expect(decidePush(config, push(over))).toEqual({ action: 'ignore', reason });
  });
});

describe('push payload types', () => {
  const push = (over: Record<string, unknown> = {}) => ({
    ...pushPayload({ repository: 'demo/widget', branch: 'main', sha: SHA, message: 'msg', author: 'alice' }),
    ...over,
  });

  it.each([
    ['ref', { ref: 42 }, /^malformed push payload \(ref: .*expected string/],
    ['ref', { ref: ['refs/heads/main'] }, /ref: .*expected string/],
    ['after', { after: { sha: SHA } }, /after: .*expected string/],
    ['repository.full_name', { repository: { full_name: 7 } }, /repository\.full_name: .*expected string/],
    ['repository', { repository: 'demo/widget' }, /repository: .*expected object/],
    ['head_commit', { head_commit: 'abc' }, /head_commit: .*expected object/],
    ['head_commit.message', { head_commit: { id: SHA, message: 5 } }, /head_commit\.message: /],
    ['deleted', { deleted: 'no' }, /deleted: .*expected boolean/],
  ])('refuses a wrong-typed %s with the field and the fix', (_field, over, reason) => {
    const d = decidePush(config, push(over));
    expect(d.action).toBe('reject');
    if (d.action !== 'reject') return;
    expect(d.reason).toMatch(reason);
    expect(d.reason).toMatch(/send GitHub push events as documented at https:\/\/docs\.github\.com/);
  });

  it('takes a null head_commit (a deleted branch) and missing optional fields as GitHub sends them', () => {
    expect(decidePush(config, push({ head_commit: null, deleted: true, after: '0'.repeat(40) }))).toEqual({
      action: 'ignore',
      reason: 'ignored: branch deleted',
    });
    const d = decidePush(config, push({ head_commit: null, compare: undefined, pusher: undefined }));
    expect(d.action === 'start' && d.input.commit).toEqual({ message: '', author: '', compareUrl: '' });
  });
});

describe('push facts and decisions', () => {
  it('keeps the facts of a push only, and the decision takes commands from the config', () => {
    const f = pushFacts(pushPayload({ repository: 'demo/widget', branch: 'main', sha: SHA, message: 'm' }), 'dlv');
    expect(f.action).toBe('facts');
    if (f.action !== 'facts') return;
    expect(Object.keys(f.facts).sort()).toEqual(['branch', 'commit', 'deliveryId', 'repository', 'sha']);
    const d = decideFacts(config, f.facts);
    expect(d.action === 'start' && d.input.repository.steps).toEqual(config.repositories[0].steps);
  });

  it('decides again against another config: new steps, a branch no longer monitored, a repository removed', () => {
    const f = pushFacts(pushPayload({ repository: 'demo/widget', branch: 'main', sha: SHA }));
    if (f.action !== 'facts') throw new Error('expected facts');
    const repo = config.repositories[0];
    const changed = { ...config, repositories: [{ ...repo, steps: { unit: 'make check' } }] };
    const d = decideFacts(changed, f.facts);
    expect(d.action === 'start' && d.input.repository.steps).toEqual({ unit: 'make check' });
    const noMain = { ...config, repositories: [{ ...repo, branches: [{ ...repo.branches[1] }] }] };
    expect(decideFacts(noMain, f.facts)).toEqual({ action: 'ignore', reason: 'ignored: branch not monitored' });
    expect(decideFacts({ ...config, repositories: [] }, f.facts)).toEqual({
      action: 'ignore',
      reason: 'ignored: repository demo/widget is not configured',
    });
  });
});
