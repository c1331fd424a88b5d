// Documented examples as the end-to-end test (conveyor.yml `e2e: { examples: [...] }`), the pure
// part: which files a pattern names, how a marked block of a document becomes commands with
// expected output, and how an actual output is compared with the expected one (cram/doctest
// style). The builder reads the documents at the run's commit (activities/examples), the
// orchestrator runs each block on a staging host (activities/fleet/run-examples.ts), and this
// module decides what matched; the workflow only reports.
//
// The convention (also in the README, "Documented examples"):
// - a fenced block (``` or ~~~) whose info string holds the word `conveyor-example`
//   (```` ```console conveyor-example ````), or any fenced block right after the comment line
//   `<!-- conveyor-example -->` (blank lines between allowed);
// - `$ cmd` starts a command, `> more` lines right after it continue it (a multi-line command);
//   the lines that follow, up to the next `$ ` or the block's end, are its expected output
//   (stdout and stderr together, as a terminal shows them);
// - a line that is exactly `...` matches any number of lines, none included; `...` inside a line
//   matches any text there; a last line `[N]` says the command exits with N (otherwise 0);
// - trailing blanks of each line and trailing empty lines are ignored.
// The commands of one block run in one shell, in order, in a fresh temporary directory.
//
// Pure (no I/O, no Buffer): the workflow and the activities import it.

/** The info-string word, and the comment, that mark a block. */
export const EXAMPLE_MARKER = 'conveyor-example';
export const EXAMPLE_COMMENT = `<!-- ${EXAMPLE_MARKER} -->`;

/** Caps on what the documents may make the run carry (a history holds at most 50 MB). */
export const ExampleLimits = {
  patterns: 32,
  patternChars: 256,
  /** Files matched by all patterns together. */
  files: 64,
  /** A document larger than this is refused, not read. */
  fileBytes: 1024 * 1024,
  examples: 200,
  commandsPerExample: 100,
  /** Commands and expected output of all examples together. */
  textBytes: 256 * 1024,
  /** Lines of actual output a mismatch report shows, and characters of one diff. */
  diffLines: 200,
  diffChars: 4000,
  /** Mismatches of one host that keep their diff (the rest keep file, line and command). */
  mismatchDiffs: 50,
} as const;

export interface ExampleCommand {
  /** 1-based line of the `$ ` line in its file. */
  line: number;
  command: string;
  expected: string[];
  /** From a last `[N]` line; 0 otherwise. */
  exitCode: number;
}

export interface DocExample {
  /** Repository-relative path. */
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  commands: ExampleCommand[];
}

/** A problem in a document or a pattern, with its place. */
export interface ExampleProblem {
  file: string;
  line: number;
  message: string;
}

/** What one command of a block did on a host; null output: it never finished (see `note`). */
export interface CommandRun {
  output: string[] | null;
  exitCode: number | null;
  note?: string;
}

export interface ExampleMismatch {
  file: string;
  line: number;
  host: string;
  command: string;
  /** `- expected` / `+ actual` lines, context with two spaces. */
  diff: string;
}

const PATTERN_CHARS = /^[A-Za-z0-9._+@,=~ *?/-]+$/;

/** Why a document pattern cannot be used, or undefined. Patterns come from conveyor.yml but name
 * files of an untrusted checkout: relative, no `.`/`..` segment, `**` only as a whole segment. */
export function examplePatternProblem(pattern: string): string | undefined {
  if (typeof pattern !== 'string' || pattern.length === 0) return 'must be a non-empty path pattern';
  if (pattern.length > ExampleLimits.patternChars) return `is longer than ${ExampleLimits.patternChars} characters`;
  if (!PATTERN_CHARS.test(pattern)) return 'may hold only letters, digits, `._+@,=~ -`, `/` and the wildcards `*` `?`';
  if (pattern.startsWith('/')) return 'must be relative to the checkout';
  for (const segment of pattern.split('/')) {
    if (segment === '') return 'has an empty path segment';
    if (segment === '.' || segment === '..') return 'may not hold a `.` or `..` segment';
    if (segment.includes('**') && segment !== '**') return '`**` must be a whole path segment';
  }
  return undefined;
}

/** The pattern as a regular expression over repository-relative paths: `*` and `?` stay inside one
 * segment, `**` spans any number of segments. */
export function examplePatternRegExp(pattern: string): RegExp {
  const segments = pattern.split('/');
  const last = segments.length - 1;
  const body = segments
    .map((s, i) => {
      if (s === '**') return i === last ? '.*' : '(?:[^/]+/)*';
      const re = s
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '[^/]*')
        .replace(/\?/g, '[^/]');
      return i === last ? re : `${re}/`;
    })
    .join('');
  return new RegExp(`^${body}$`);
}

const FENCE = /^( *)(`{3,}|~{3,})(.*)$/;
const EXIT_LINE = /^\[(\d{1,3})\]$/;

/** The marked blocks of one document, and what is wrong in them (each with its line). */
export function parseExamples(file: string, text: string): { examples: DocExample[]; problems: ExampleProblem[] } {
  const lines = text.split(/\r?\n/);
  const examples: DocExample[] = [];
  const problems: ExampleProblem[] = [];
  let commentAt = -1; // index of the last marker comment, while only blank lines follow it
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const open = FENCE.exec(line);
    if (!open || (open[2][0] === '`' && open[3].includes('`'))) {
      if (line.trim() === EXAMPLE_COMMENT) commentAt = i;
      else if (line.trim() !== '') commentAt = -1;
      continue;
    }
    const [, indent, fence, info] = open;
    const marked = commentAt >= 0 || info.trim().split(/\s+/).includes(EXAMPLE_MARKER);
    commentAt = -1;
    const close = new RegExp(`^ *${fence[0] === '`' ? '`' : '~'}{${fence.length},}\\s*$`);
    let end = i + 1;
    while (end < lines.length && !close.test(lines[end])) end++;
    if (marked) {
      if (end >= lines.length) {
        problems.push({ file, line: i + 1, message: 'the example block is never closed' });
      } else {
        const body = lines.slice(i + 1, end).map((l) => stripIndent(l, indent.length));
        const parsed = parseBlock(file, i + 1, body);
        problems.push(...parsed.problems);
        if (parsed.example) examples.push(parsed.example);
      }
    }
    i = end;
  }
  return { examples, problems };
}

function stripIndent(line: string, n: number): string {
  let k = 0;
  while (k < n && line[k] === ' ') k++;
  return line.slice(k);
}

/** One block's body; `fenceLine` is the 1-based line of its opening fence. */
function parseBlock(
  file: string,
  fenceLine: number,
  body: string[],
): { example?: DocExample; problems: ExampleProblem[] } {
  const problems: ExampleProblem[] = [];
  const commands: ExampleCommand[] = [];
  let cur: ExampleCommand | undefined;
  body.forEach((text, k) => {
    const line = fenceLine + 1 + k;
    if (text === '$' || text.startsWith('$ ')) {
      const command = text.slice(2);
      if (command.trim() === '') problems.push({ file, line, message: 'a `$` line without a command' });
      cur = { line, command, expected: [], exitCode: 0 };
      commands.push(cur);
    } else if (cur && cur.expected.length === 0 && (text === '>' || text.startsWith('> '))) {
      cur.command += `\n${text.slice(2)}`;
    } else if (!cur) {
      if (text.trim() !== '')
        problems.push({ file, line, message: 'output before the first `$ ` command of the example block' });
    } else {
      cur.expected.push(text);
    }
  });
  if (commands.length === 0) {
    problems.push({ file, line: fenceLine, message: 'the example block has no `$ ` command' });
    return { problems };
  }
  if (commands.length > ExampleLimits.commandsPerExample) {
    problems.push({
      file,
      line: fenceLine,
      message: `the example block has ${commands.length} commands (at most ${ExampleLimits.commandsPerExample})`,
    });
  }
  for (const c of commands) {
    c.expected = trimTrailingEmpty(c.expected.map((l) => l.trimEnd()));
    const exit = EXIT_LINE.exec(c.expected[c.expected.length - 1] ?? '');
    if (exit) {
      c.exitCode = Number(exit[1]);
      c.expected = trimTrailingEmpty(c.expected.slice(0, -1));
    }
  }
  return { example: { file, line: fenceLine, commands }, problems };
}

function trimTrailingEmpty(lines: string[]): string[] {
  let n = lines.length;
  while (n > 0 && lines[n - 1] === '') n--;
  return lines.slice(0, n);
}

/** Size of the examples' text, as the limit counts it (UTF-16 units are close enough here). */
export function examplesTextSize(examples: readonly DocExample[]): number {
  let n = 0;
  for (const e of examples) for (const c of e.commands) n += c.command.length + c.expected.join('\n').length;
  return n;
}

/** One expected line against one actual line: `...` inside a line matches any text there. */
export function lineMatches(expected: string, actual: string): boolean {
  if (!expected.includes('...')) return expected === actual;
  const parts = expected.split('...');
  const first = parts[0];
  const last = parts[parts.length - 1];
  if (actual.length < first.length + last.length || !actual.startsWith(first) || !actual.endsWith(last)) return false;
  let at = first.length;
  const stop = actual.length - last.length;
  for (const part of parts.slice(1, -1)) {
    const k = actual.indexOf(part, at);
    if (k < 0 || k + part.length > stop) return false;
    at = k + part.length;
  }
  return true;
}

/** Whether `actual` shows what `expected` says, a line that is exactly `...` matching any lines. */
export function outputMatches(expected: readonly string[], actual: readonly string[]): boolean {
  // m[j]: expected[i..] matches actual[j..]; rows from the end, two at a time.
  let next: boolean[] = new Array<boolean>(actual.length + 1).fill(false);
  next[actual.length] = true;
  for (let i = expected.length - 1; i >= 0; i--) {
    const row: boolean[] = new Array<boolean>(actual.length + 1).fill(false);
    for (let j = actual.length; j >= 0; j--) {
      row[j] =
        expected[i] === '...'
          ? next[j] || (j < actual.length && row[j + 1])
          : j < actual.length && next[j + 1] && lineMatches(expected[i], actual[j]);
    }
    next = row;
  }
  return next[0];
}

/** A line diff (longest common subsequence; `...` lines shown as context): `- ` only expected,
 * `+ ` only actual, two spaces both. */
export function diffLines(expected: readonly string[], actual: readonly string[]): string {
  const a = actual.slice(0, ExampleLimits.diffLines);
  const eq = (e: string, x: string) => e !== '...' && lineMatches(e, x);
  const n = expected.length;
  const m = a.length;
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      lcs[i][j] = eq(expected[i], a[j]) ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && eq(expected[i], a[j])) {
      out.push(`  ${a[j]}`);
      i++;
      j++;
    } else if (i < n && expected[i] === '...') {
      out.push('  ...');
      i++;
    } else if (i < n && (j >= m || lcs[i + 1][j] >= lcs[i][j + 1])) {
      out.push(`- ${expected[i++]}`);
    } else {
      out.push(`+ ${a[j++]}`);
    }
  }
  if (actual.length > a.length) out.push(`  (${actual.length - a.length} more lines of output not shown)`);
  const text = out.join('\n');
  return text.length > ExampleLimits.diffChars ? `${text.slice(0, ExampleLimits.diffChars)}\n  (diff cut)` : text;
}

/** The mismatches of one block's run on `host`: every command whose output or exit code differs
 * from the document, and every command that never finished. Empty when the example passed. */
export function checkExample(example: DocExample, runs: readonly CommandRun[], host: string): ExampleMismatch[] {
  const mismatches: ExampleMismatch[] = [];
  example.commands.forEach((c, k) => {
    const run = runs[k];
    const at = { file: example.file, line: c.line, host, command: c.command };
    const expected = c.exitCode === 0 ? c.expected : [...c.expected, `[${c.exitCode}]`];
    if (!run || run.output === null) {
      const note = run?.note ?? 'it did not run: an earlier command of the block ended its shell';
      mismatches.push({ ...at, diff: `${diffLines(expected, [])}\n! ${note}` });
      return;
    }
    const actualOutput = trimTrailingEmpty(run.output.map((l) => l.trimEnd()));
    if (run.exitCode === c.exitCode && outputMatches(c.expected, actualOutput)) return;
    const actual = run.exitCode === 0 ? actualOutput : [...actualOutput, `[${run.exitCode}]`];
    mismatches.push({ ...at, diff: diffLines(expected, actual) });
  });
  return mismatches;
}

/** `README.md:12 on host-1: $ widget add 2 3` and its diff, for a stage's failure tail. */
export function formatMismatch(m: ExampleMismatch): string {
  const command = m.command.split('\n').join('\n  > ');
  return `${m.file}:${m.line} on ${m.host}: $ ${command}\n${m.diff}`;
}
