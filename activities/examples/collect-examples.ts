// collectExamples: the documents of `e2e: { examples: [...] }` at the run's commit, parsed into
// their marked example blocks (common/doc-examples.ts). Runs on a build worker, which holds the
// checkout credentials and nothing a document could use; it runs nothing of the repository.
//
// The documents are untrusted. They are read from git's objects of the exact commit, never from
// a working tree: `git ls-tree` names every file with its mode, so a symlink (mode 120000) or a
// submodule is skipped instead of followed, and a path is only ever compared with the patterns,
// never opened. Blobs come out of `git cat-file`, without filters or attributes of the
// repository. Sizes are capped (ExampleLimits), so a document cannot fill a history.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ApplicationFailure } from '@temporalio/common';
import {
  ExampleLimits,
  examplePatternProblem,
  examplePatternRegExp,
  examplesTextSize,
  parseExamples,
  type DocExample,
  type ExampleProblem,
} from '../../common/doc-examples';
import { FailureType } from '../../common/failures';
import { activityHooks } from '../exec/run-step';
import { gitBaseEnv, type GitAuth } from '../git/auth';
import { checkout } from '../git/checkout';

const run = promisify(execFile);

export interface CollectExamplesInput {
  cloneUrl: string;
  sha: string;
  /** conveyor.yml `e2e.examples`: repository-relative path patterns. */
  patterns: string[];
}

export interface CollectExamplesResult {
  /** The documents read, in path order. */
  files: string[];
  examples: DocExample[];
  /** Patterns that matched nothing, documents too large, malformed blocks: each with its place. */
  problems: ExampleProblem[];
}

export interface CollectExamplesDeps {
  workspaceRoot?: string;
  gitAuth?: GitAuth;
}

/** `git ls-tree -r -z` output: regular files only (100644, 100755), with their blob ids. */
export function regularFiles(listing: string): { path: string; blob: string }[] {
  const files: { path: string; blob: string }[] = [];
  for (const entry of listing.split('\0')) {
    const m = /^(\d{6}) blob ([0-9a-f]{40,64})\t(.+)$/s.exec(entry);
    if (m && (m[1] === '100644' || m[1] === '100755')) files.push({ path: m[3], blob: m[2] });
  }
  return files;
}

/** Which files the patterns name, and the patterns that name none. */
export function selectDocuments(
  files: readonly { path: string; blob: string }[],
  patterns: readonly string[],
): { selected: { path: string; blob: string }[]; unmatched: string[] } {
  const chosen = new Map<string, { path: string; blob: string }>();
  const unmatched: string[] = [];
  for (const pattern of patterns) {
    const re = examplePatternRegExp(pattern);
    const hits = files.filter((f) => re.test(f.path));
    if (hits.length === 0) unmatched.push(pattern);
    for (const f of hits) chosen.set(f.path, f);
  }
  return { selected: [...chosen.values()].sort((a, b) => (a.path < b.path ? -1 : 1)), unmatched };
}

export function createCollectExamples(deps: CollectExamplesDeps) {
  return async function collectExamples(input: CollectExamplesInput): Promise<CollectExamplesResult> {
    const bad = input.patterns.map((p) => ({ p, why: examplePatternProblem(p) })).filter((x) => x.why);
    if (bad.length > 0 || input.patterns.length === 0 || input.patterns.length > ExampleLimits.patterns) {
      throw ApplicationFailure.create({
        type: FailureType.BadConfig,
        nonRetryable: true,
        message:
          bad.length > 0
            ? `e2e.examples: ${bad.map((x) => `${JSON.stringify(x.p)} ${x.why}`).join('; ')}`
            : `e2e.examples: give 1 to ${ExampleLimits.patterns} patterns`,
      });
    }
    const hooks = activityHooks();
    const root = deps.workspaceRoot ?? path.join(os.tmpdir(), 'conveyor-work');
    fs.mkdirSync(root, { recursive: true });
    const dir = fs.mkdtempSync(path.join(root, 'examples-'));
    try {
      hooks.heartbeat({ phase: 'checkout' });
      const head = await checkout(input.cloneUrl, input.sha, dir, hooks.signal, deps.gitAuth);
      const git = async (args: string[], maxBuffer: number) =>
        (
          await run('git', ['-C', dir, ...args], {
            env: gitBaseEnv(),
            encoding: 'buffer',
            maxBuffer,
            signal: hooks.signal,
          })
        ).stdout;
      hooks.heartbeat({ phase: 'list' });
      const listing = (await git(['ls-tree', '-r', '-z', '--full-tree', head], 256 * 1024 * 1024)).toString('utf8');
      const { selected, unmatched } = selectDocuments(regularFiles(listing), input.patterns);
      const problems: ExampleProblem[] = unmatched.map((p) => ({
        file: p,
        line: 0,
        message: `matches no regular file at ${input.sha.slice(0, 12)} (symlinks and submodules are not read)`,
      }));
      if (selected.length > ExampleLimits.files) {
        problems.push({
          file: input.patterns.join(' '),
          line: 0,
          message: `the patterns match ${selected.length} files (at most ${ExampleLimits.files})`,
        });
        return { files: [], examples: [], problems };
      }
      const examples: DocExample[] = [];
      for (const f of selected) {
        hooks.heartbeat({ phase: 'read', file: f.path });
        const size = Number((await git(['cat-file', '-s', f.blob], 1024)).toString('utf8').trim());
        if (size > ExampleLimits.fileBytes) {
          problems.push({ file: f.path, line: 0, message: `is ${size} bytes (at most ${ExampleLimits.fileBytes})` });
          continue;
        }
        const bytes = await git(['cat-file', 'blob', f.blob], ExampleLimits.fileBytes + 1024);
        if (bytes.includes(0)) {
          problems.push({ file: f.path, line: 0, message: 'is not a text file (it holds NUL bytes)' });
          continue;
        }
        const parsed = parseExamples(f.path, bytes.toString('utf8'));
        examples.push(...parsed.examples);
        problems.push(...parsed.problems);
      }
      if (examples.length > ExampleLimits.examples || examplesTextSize(examples) > ExampleLimits.textBytes) {
        problems.push({
          file: selected.map((f) => f.path).join(' '),
          line: 0,
          message: `hold ${examples.length} examples of ${examplesTextSize(examples)} characters (at most ${ExampleLimits.examples} and ${ExampleLimits.textBytes})`,
        });
        return { files: selected.map((f) => f.path), examples: [], problems };
      }
      return { files: selected.map((f) => f.path), examples, problems };
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
}
