// Documented examples, the pure part: which blocks are marked, how `$`/`>`/output/`[N]` lines
// become commands, the `...` wildcards, the patterns a config may give, and a mismatch reported
// with its file:line and an expected/actual diff. The block scripts' output cut at the markers
// (activities/fleet/run-examples.ts) is checked here too, on text a shell would print.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  checkExample,
  diffLines,
  examplePatternProblem,
  examplePatternRegExp,
  formatMismatch,
  lineMatches,
  outputMatches,
  parseExamples,
} from '../../common/doc-examples';
import { regularFiles, selectDocuments } from '../../activities/examples/collect-examples';
import { exampleScript, splitRuns } from '../../activities/fleet/run-examples';
import { loadConfig, type ConveyorConfig } from '../../config/conveyor';
import { testTempDir } from '../helpers/temp';

/** A one-repository conveyor.yml whose `e2e` is `e2e`, loaded as the workers load it. */
function loadConfigText(e2e: unknown): ConveyorConfig {
  const dir = testTempDir('conveyor-examples-');
  const file = path.join(dir, 'conveyor.yml');
  fs.writeFileSync(
    file,
    [
      'storage: { artifacts: s3://a-bucket, staging: s3://s-bucket, production: s3://p-bucket }',
      'distros: { bookworm: { format: deb, codename: bookworm, arch: amd64 } }',
      'repositories:',
      '  - name: acme/widget',
      '    cloneUrl: repos/widget.git',
      '    branches: [{ match: main, channel: unstable }]',
      `    steps: { unit: make test, e2e: ${JSON.stringify(e2e)} }`,
      '    distros: [bookworm]',
      '',
    ].join('\n'),
  );
  return loadConfig(file, {});
}

const DOC = [
  '# widget', // 1
  '', // 2
  'Not an example:', // 3
  '', // 4
  '```console', // 5
  '$ rm -rf /', // 6
  '```', // 7
  '', // 8
  '```console conveyor-example', // 9
  '$ widget --version', // 10
  'widget ...', // 11
  '$ widget add 2 3', // 12
  '5', // 13
  '```', // 14
  '', // 15
  '<!-- conveyor-example -->', // 16
  '', // 17
  '~~~sh', // 18
  '$ printf "a\\nb\\nc\\n" &&', // 19
  '> echo done', // 20
  'a', // 21
  '...', // 22
  'done', // 23
  '$ widget', // 24
  'usage: ...   ', // 25
  '[2]', // 26
  '', // 27
  '~~~', // 28
  '', // 29
  '- in a list:', // 30
  '', // 31
  '  ```console conveyor-example', // 32
  '  $ echo indented', // 33
  '  indented', // 34
  '  ```', // 35
].join('\n');

describe('documented examples: parsing', () => {
  it('finds only marked blocks, by info string or by comment, with their commands and lines', () => {
    const { examples, problems } = parseExamples('README.md', DOC);
    expect(problems).toEqual([]);
    expect(examples).toEqual([
      {
        file: 'README.md',
        line: 9,
        commands: [
          { line: 10, command: 'widget --version', expected: ['widget ...'], exitCode: 0 },
          { line: 12, command: 'widget add 2 3', expected: ['5'], exitCode: 0 },
        ],
      },
      {
        file: 'README.md',
        line: 18,
        commands: [
          { line: 19, command: 'printf "a\\nb\\nc\\n" &&\necho done', expected: ['a', '...', 'done'], exitCode: 0 },
          { line: 24, command: 'widget', expected: ['usage: ...'], exitCode: 2 },
        ],
      },
      {
        file: 'README.md',
        line: 32,
        commands: [{ line: 33, command: 'echo indented', expected: ['indented'], exitCode: 0 }],
      },
    ]);
  });

  it('reports malformed marked blocks with file:line and ignores the rest', () => {
    const text = [
      '```console conveyor-example', // 1
      'output first', // 2
      '$ true', // 3
      '```', // 4
      '```conveyor-example', // 5
      'nothing to run', // 6
      '```', // 7
      '<!-- conveyor-example -->', // 8
      'a paragraph breaks the comment off', // 9
      '```console', // 10
      'not run', // 11
      '```', // 12
      '```console conveyor-example', // 13
      '$ echo never closed', // 14
    ].join('\n');
    const { examples, problems } = parseExamples('docs/x.md', text);
    expect(problems).toEqual([
      { file: 'docs/x.md', line: 2, message: 'output before the first `$ ` command of the example block' },
      { file: 'docs/x.md', line: 6, message: 'output before the first `$ ` command of the example block' },
      { file: 'docs/x.md', line: 5, message: 'the example block has no `$ ` command' },
      { file: 'docs/x.md', line: 13, message: 'the example block is never closed' },
    ]);
    expect(examples.map((e) => e.line)).toEqual([1]);
  });

  it('a fence inside a longer fence is content, not a block of its own', () => {
    const text = ['````markdown', '```console conveyor-example', '$ echo hidden', '```', '````'].join('\n');
    expect(parseExamples('a.md', text)).toEqual({ examples: [], problems: [] });
  });
});

describe('documented examples: matching', () => {
  it('`...` as a line matches any number of lines, none included; inside a line, any text', () => {
    expect(outputMatches(['a', '...', 'z'], ['a', 'z'])).toBe(true);
    expect(outputMatches(['a', '...', 'z'], ['a', 'b', 'c', 'z'])).toBe(true);
    expect(outputMatches(['a', '...', 'z'], ['a', 'b', 'c'])).toBe(false);
    expect(outputMatches(['...'], [])).toBe(true);
    expect(outputMatches([], ['x'])).toBe(false);
    expect(lineMatches('widget ...', 'widget 1.0.0')).toBe(true);
    expect(lineMatches('widget ...', 'gadget 1.0.0')).toBe(false);
    expect(lineMatches('a...b...c', 'a-b-c')).toBe(true);
    expect(lineMatches('ab...ba', 'aba')).toBe(false);
    expect(lineMatches('Loading...', 'Loading...')).toBe(true);
  });

  it('a mismatch names file, line and host, with an expected/actual diff; exit codes count', () => {
    const { examples } = parseExamples('README.md', DOC);
    const ok = checkExample(
      examples[0],
      [
        { output: ['widget 1.0.0', ''], exitCode: 0 },
        { output: ['5'], exitCode: 0 },
      ],
      'bookworm-1',
    );
    expect(ok).toEqual([]);
    const bad = checkExample(
      examples[0],
      [
        { output: ['widget 1.0.0'], exitCode: 0 },
        { output: ['6'], exitCode: 0 },
      ],
      'bookworm-1',
    );
    expect(bad).toEqual([
      { file: 'README.md', line: 12, host: 'bookworm-1', command: 'widget add 2 3', diff: '- 5\n+ 6' },
    ]);
    expect(formatMismatch(bad[0])).toBe('README.md:12 on bookworm-1: $ widget add 2 3\n- 5\n+ 6');
    // Same output, another exit code: still a mismatch, shown as cram shows it.
    const exit = checkExample(
      examples[1],
      [
        { output: ['a', 'b', 'c', 'done'], exitCode: 0 },
        { output: ['usage: widget --version'], exitCode: 1 },
      ],
      'el9-1',
    );
    expect(exit).toEqual([
      {
        file: 'README.md',
        line: 24,
        host: 'el9-1',
        command: 'widget',
        diff: '  usage: widget --version\n- [2]\n+ [1]',
      },
    ]);
    // A command that never finished, and one never run after it.
    const ended = checkExample(examples[1], [{ output: null, exitCode: null, note: 'timed out' }], 'el9-1');
    expect(ended.map((m) => [m.line, m.diff])).toEqual([
      [19, '- a\n  ...\n- done\n! timed out'],
      [24, '- usage: ...\n- [2]\n! it did not run: an earlier command of the block ended its shell'],
    ]);
  });

  it('diffs show `...` lines as context', () => {
    expect(diffLines(['a', '...', 'z'], ['a', 'b', 'y'])).toBe('  a\n  ...\n- z\n+ b\n+ y');
  });
});

describe('documented examples: patterns and documents', () => {
  it('refuses patterns that could leave the checkout or are not paths', () => {
    for (const ok of ['README.md', 'docs/*.md', 'docs/**/*.md', '**/README.md', 'a b/c?.md'])
      expect(examplePatternProblem(ok)).toBeUndefined();
    expect(examplePatternProblem('/etc/passwd')).toBe('must be relative to the checkout');
    expect(examplePatternProblem('docs/../../x')).toBe('may not hold a `.` or `..` segment');
    expect(examplePatternProblem('./README.md')).toBe('may not hold a `.` or `..` segment');
    expect(examplePatternProblem('docs//x')).toBe('has an empty path segment');
    expect(examplePatternProblem('a**/b')).toBe('`**` must be a whole path segment');
    expect(examplePatternProblem('$(reboot)')).toMatch(/may hold only/);
    expect(examplePatternProblem('a\\b')).toMatch(/may hold only/);
    expect(examplePatternProblem('')).toBe('must be a non-empty path pattern');
  });

  it('`*` stays in a segment, `**` spans segments', () => {
    expect(examplePatternRegExp('docs/*.md').test('docs/a.md')).toBe(true);
    expect(examplePatternRegExp('docs/*.md').test('docs/x/a.md')).toBe(false);
    expect(examplePatternRegExp('docs/**/*.md').test('docs/a.md')).toBe(true);
    expect(examplePatternRegExp('docs/**/*.md').test('docs/x/y/a.md')).toBe(true);
    expect(examplePatternRegExp('README.md').test('READMEXmd')).toBe(false);
  });

  it('reads regular files only, and names the patterns that match none', () => {
    const listing = [
      '100644 blob 1111111111111111111111111111111111111111\tREADME.md',
      '120000 blob 2222222222222222222222222222222222222222\tdocs/link.md',
      '100755 blob 3333333333333333333333333333333333333333\tdocs/run.md',
      '160000 commit 4444444444444444444444444444444444444444\tvendor',
      '',
    ].join('\0');
    const files = regularFiles(listing);
    expect(files.map((f) => f.path)).toEqual(['README.md', 'docs/run.md']);
    const { selected, unmatched } = selectDocuments(files, ['docs/*.md', 'README.md', 'docs/link.md']);
    expect(selected.map((f) => f.path)).toEqual(['README.md', 'docs/run.md']);
    expect(unmatched).toEqual(['docs/link.md']);
  });

  it('conveyor.yml takes `e2e: { examples }` and refuses a pattern that escapes, with its path', () => {
    expect(loadConfigText({ examples: ['README.md', 'docs/*.md'] }).repositories[0].steps.e2e).toEqual({
      examples: ['README.md', 'docs/*.md'],
    });
    expect(() => loadConfigText({ examples: ['../secrets.md'] })).toThrow(
      /repositories\[0\]\.steps\.e2e\.examples\[0\]: may not hold a `\.` or `\.\.` segment/,
    );
    expect(() => loadConfigText({ examples: [] })).toThrow(/repositories\[0\]\.steps\.e2e/);
  });
});

describe('documented examples: a block as one shell script', () => {
  it('cuts the output at the markers into one output and exit code per command', () => {
    const { examples } = parseExamples('README.md', DOC);
    const ex = { ...examples[1], commands: [...examples[1].commands] };
    ex.commands[1] = { ...ex.commands[1], command: 'printf "no newline"; exit 3' };
    const mark = 'conveyor-example-0123abcd';
    const ran = spawnSync('sh', ['-c', exampleScript(ex, mark)], { encoding: 'utf8' });
    expect(ran.status).toBe(3);
    const out = ran.stdout;
    // exit 3 ended the shell before the marker of the second command.
    const runs = splitRuns(out, mark, 2, 'its shell ended with 3 before the command finished');
    expect(runs).toEqual([
      { output: ['a', 'b', 'c', 'done', ''], exitCode: 0 },
      {
        output: null,
        exitCode: null,
        note: 'its shell ended with 3 before the command finished after printing:\nno newline',
      },
    ]);
    const plain = spawnSync('sh', ['-c', exampleScript(examples[2], mark)], { encoding: 'utf8' }).stdout;
    expect(checkExample(examples[2], splitRuns(plain, mark, 1, 'x'), 'here')).toEqual([]);
  });
});
