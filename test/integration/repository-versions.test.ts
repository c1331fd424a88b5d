// Retention keeps "the newest builds": the order must be the package managers' own. Our dpkg and
// rpm comparisons are checked against `dpkg --compare-versions` and rpm's built-in `rpm.vercmp`.
import { runChecked, runProcess } from '../../activities/exec/process';
import { compareDebVersions, compareRpmVersions } from '../../activities/repository/version-compare';

const PAIRS: [string, string][] = [
  ['1.0-9', '1.0-10'],
  ['1.0-10', '1.0-10'],
  ['1.0', '1.0-0'],
  ['1.0~rc1-1', '1.0-1'],
  ['1.0~~a', '1.0~'],
  ['1.0a-1', '1.0-1'],
  ['1.0.1-1', '1.0-1'],
  ['1:0.9-1', '2.0-1'],
  ['0:2.0-1', '2.0-1'],
  ['2.0-1', '10.0-1'],
  ['1.10-1', '1.9-1'],
  ['1.0+git20260101-1', '1.0-1'],
  ['1.0-1ubuntu1', '1.0-1'],
  ['1.0-1.1', '1.0-1'],
  ['007-1', '7-1'],
  ['1.0-a', '1.0-1'],
  ['2.3.0-5', '2.3.0-12'],
  ['1.0^20260101-1', '1.0-1'],
  ['1.0-alpha', '1.0-beta'],
  ['1.2.3-100', '1.2.3-99'],
];

describe('version order for retention', () => {
  it('orders deb versions as dpkg --compare-versions does', async () => {
    for (const [a, b] of PAIRS.filter(([x, y]) => !x.includes('^') && !y.includes('^'))) {
      const lt = (await runProcess('dpkg', ['--compare-versions', a, 'lt', b])).exitCode === 0;
      const eq = (await runProcess('dpkg', ['--compare-versions', a, 'eq', b])).exitCode === 0;
      expect([a, b, compareDebVersions(a, b)]).toEqual([a, b, lt ? -1 : eq ? 0 : 1]);
      expect(compareDebVersions(b, a)).toBe(lt ? 1 : eq ? 0 : -1);
    }
  });

  it('orders rpm [epoch:]version-release strings as rpm.vercmp does', async () => {
    // rpm's Lua print() adds no newline here: collect, then print once.
    const calls = PAIRS.map(([a, b]) => `rpm.vercmp("${a}", "${b}")`).join(', ');
    const out = await runChecked('rpm', ['--eval', `%{lua: print(table.concat({ ${calls} }, ","))}`]);
    const expected = out.trim().split(',').map(Number);
    expect(expected).toHaveLength(PAIRS.length);
    PAIRS.forEach(([a, b], i) => expect([a, b, compareRpmVersions(a, b)]).toEqual([a, b, expected[i]]));
  });
});
