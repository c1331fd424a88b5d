// The publish steps that decide without I/O, each on its own: retention by build count
// (publish-plan.ts), retention of replaced generations by time (publish-collect.ts), and the
// re-dating of a Release (resign-release.ts). The integration tests prove them with apt and dnf.
import { collect, retire } from '../../activities/repository/publish-collect';
import { retain } from '../../activities/repository/publish-plan';
import type { RepositoryFormat } from '../../activities/repository/publish-types';
import { emptyState, type PublishedPackage, type RepositoryState } from '../../activities/repository/repository-state';
import { redate } from '../../activities/repository/resign-release';
import { compareDebVersions } from '../../activities/repository/version-compare';

const pkg = (name: string, version: string): PublishedPackage =>
  ({ name, version, arch: 'amd64', key: `apt/pool/${name}_${version}.deb`, meta: {} }) as PublishedPackage;
const rec = (key: string) => ({ key, sha256: '', md5: '', size: 1, hashed: key.includes('by-hash') });
const state = (generation: number, packages: PublishedPackage[], current: string[], at: string): RepositoryState => ({
  ...emptyState('apt'),
  generation,
  packages,
  current: current.map(rec),
  signed: [rec('apt/dists/s/InRelease')],
  publishedAt: at,
  retired: [],
});
const fmt = {
  owns: (k: string) => k.startsWith('apt/pool/') || k.includes('/by-hash/'),
  stateKey: 'conveyor-state/apt/s.json',
} as RepositoryFormat;
const listing = (keys: string[]) => new Map(keys.map((k) => [k, { key: k, size: 1, etag: '' }]));
const H = 3_600_000;

describe('retain', () => {
  it("keeps the newest builds of the publisher's names in dpkg order, every version of others", () => {
    const kept = retain(
      [pkg('a', '1.0-9'), pkg('a', '1.0-10'), pkg('a', '1.0-11'), pkg('b', '1'), pkg('b', '2')],
      2,
      compareDebVersions,
      (n) => n === 'a',
    );
    expect(kept.map((p) => `${p.name} ${p.version}`)).toEqual(['a 1.0-10', 'a 1.0-11', 'b 1', 'b 2']);
  });
});

describe('retire and collect', () => {
  const t0 = new Date('2026-12-01T00:00:00Z');
  const g1 = state(1, [pkg('a', '1')], ['apt/dists/s/by-hash/SHA256/1', 'apt/dists/s/Packages'], t0.toISOString());

  it('retires what the new generation no longer names, with the time of the switch', () => {
    const g2 = state(2, [pkg('a', '2')], ['apt/dists/s/by-hash/SHA256/2', 'apt/dists/s/Packages'], '');
    const at = new Date(t0.getTime() + H);
    expect(retire(g1, g2, at)).toEqual([
      { key: 'apt/dists/s/by-hash/SHA256/1', at: at.toISOString() },
      { key: 'apt/pool/a_1.deb', at: at.toISOString() },
    ]);
  });

  it('deletes a retired file only once the window has passed, and strays at once', () => {
    const live = state(3, [pkg('a', '3')], ['apt/dists/s/by-hash/SHA256/3'], '');
    const retired = [
      { key: 'apt/pool/a_1.deb', at: t0.toISOString() },
      { key: 'apt/pool/a_2.deb', at: new Date(t0.getTime() + 20 * H).toISOString() },
    ];
    const keys = ['apt/pool/a_1.deb', 'apt/pool/a_2.deb', 'apt/pool/a_3.deb', 'apt/pool/stray.deb'];
    const now = new Date(t0.getTime() + 25 * H);
    const gc = collect(fmt, listing(keys), live, retired, now, 24 * H);
    expect(gc.remove).toEqual(['apt/pool/a_1.deb', 'apt/pool/stray.deb']);
    expect(gc.retired.map((r) => r.key)).toEqual(['apt/pool/a_2.deb']);
  });

  it('reads a state from before retirement (previous only) as retired at its publish time', () => {
    const legacy = { ...g1, retired: undefined, previous: [rec('apt/dists/s/by-hash/SHA256/0')] };
    const g2 = state(2, [pkg('a', '1')], ['apt/dists/s/by-hash/SHA256/1', 'apt/dists/s/Packages'], '');
    expect(retire(legacy, g2, new Date(t0.getTime() + H))).toEqual([
      { key: 'apt/dists/s/by-hash/SHA256/0', at: t0.toISOString() },
    ]);
  });
});

describe('redate', () => {
  it('changes only Date and Valid-Until', () => {
    const text =
      'Origin: Conveyor\nDate: Mon, 30 Nov 2026 00:00:00 UTC\nValid-Until: Mon, 07 Dec 2026 00:00:00 UTC\nSHA256:\n x\n';
    const now = new Date('2026-12-01T12:00:00Z');
    expect(redate(text, now, new Date(now.getTime() + 7 * 24 * H))).toBe(
      'Origin: Conveyor\nDate: Tue, 01 Dec 2026 12:00:00 UTC\nValid-Until: Tue, 08 Dec 2026 12:00:00 UTC\nSHA256:\n x\n',
    );
    expect(redate(text, now, undefined)).toBe('Origin: Conveyor\nDate: Tue, 01 Dec 2026 12:00:00 UTC\nSHA256:\n x\n');
  });
});
