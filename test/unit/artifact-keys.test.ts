// Artifact keys from untrusted branch names: one safe segment per branch, never shared by two.
import { ApplicationFailure } from '@temporalio/common';
import { buildPath, keySegment, packageKey } from '../../activities/packaging/packaging-env';
import type { RepositorySpec } from '../../common/types';

const sha = 'c'.repeat(40);
const ctx = (branch: string, extra: Partial<{ sha: string; build: number; name: string }> = {}) => ({
  repository: { name: extra.name ?? 'acme/widget' } as RepositorySpec,
  branch,
  sha: extra.sha ?? sha,
  build: extra.build ?? 7,
});

describe('artifact keys', () => {
  it('names repository, branch, build and commit, the branch as one encoded segment', () => {
    expect(packageKey('', ctx('main'), 'bookworm', 'w.deb')).toBe(`packages/acme/widget/main/7/${sha}/bookworm/w.deb`);
    expect(packageKey('pre/', ctx('feature/x'), 'el9', 'w.rpm')).toBe(
      `pre/packages/acme/widget/feature%2Fx/7/${sha}/el9/w.rpm`,
    );
    expect(keySegment('v1.0')).toBe('v1.0');
    expect(keySegment('..')).toBe('%2E.');
    expect(keySegment('.hidden')).toBe('%2Ehidden');
    expect(keySegment('café branch')).toBe('caf%C3%A9%20branch');
  });

  it('never gives two branches the same segment, however they are spelled or however long', () => {
    const branches = [
      'a/b',
      'a%2Fb',
      'a%2fb',
      'a b',
      'a+b',
      'A/b',
      '.a',
      '%2Ea',
      'x'.repeat(300),
      `${'x'.repeat(299)}y`,
    ];
    const segments = branches.map((b) => keySegment(b));
    expect(new Set(segments).size).toBe(branches.length);
    for (const s of segments) {
      expect(s).toMatch(/^[A-Za-z0-9_.%~-]+$/);
      expect(s).not.toMatch(/^\.\.?$/);
      expect(s.length).toBeLessThanOrEqual(200);
    }
  });

  it('refuses a commit that is not a full SHA and a build that is not a positive integer', () => {
    for (const bad of [
      ctx('main', { sha: 'abc123' }),
      ctx('main', { sha: 'C'.repeat(40) }),
      ctx('main', { build: 0 }),
    ]) {
      expect(() => buildPath(bad)).toThrow(ApplicationFailure);
    }
    expect(buildPath(ctx('main', { sha: 'd'.repeat(64) }))).toBe(`acme/widget/main/7/${'d'.repeat(64)}`);
  });
});
