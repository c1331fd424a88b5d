// The project version of a commit: the VERSION file at that commit, else the nearest version tag
// (`v1.2.3` or `1.2.3`). Packages are versioned `<version>-<build>`, so the version must be valid
// both as a Debian upstream version and as an rpm Version: a digit first, then letters, digits,
// `.`, `+`, `~` (no `-`: it separates the build, and rpm refuses it in Version).
//
// The checkout is a depth-1 fetch of the sha, which carries no tags and no history for
// `git describe`; only when there is no VERSION file is the history fetched with its tags.
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../common/failures';
import { runProcess } from '../exec/process';

export const VERSION_PATTERN = /^[0-9][A-Za-z0-9.+~]{0,63}$/;

export interface ProjectVersion {
  version: string;
  /** Where it came from, for the log: `VERSION` or `tag v1.2.3`. */
  source: string;
}

export async function projectVersion(
  src: string,
  cloneUrl: string,
  sha: string,
  signal?: AbortSignal,
): Promise<ProjectVersion> {
  const git = (args: string[]) =>
    runProcess('git', ['-C', src, ...args], {
      signal,
      env: { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_NOSYSTEM: '1' },
    });

  // Read from the commit, not the work tree: a symlinked VERSION is then just its target text.
  const file = await git(['cat-file', 'blob', `${sha}:VERSION`]);
  if (file.exitCode === 0) {
    const version = file.output.trim();
    if (!VERSION_PATTERN.test(version)) {
      throw ApplicationFailure.nonRetryable(
        `VERSION at ${sha} is ${JSON.stringify(version.slice(0, 80))}, not a version: it must start with a digit and ` +
          'hold only letters, digits, ".", "+" and "~" (e.g. 1.4.0), since packages are versioned <version>-<build>',
        FailureType.VersionUnknown,
      );
    }
    return { version, source: 'VERSION' };
  }

  const shallow = (await git(['rev-parse', '--is-shallow-repository'])).output.trim() === 'true';
  const fetch = await git([
    'fetch',
    '--quiet',
    ...(shallow ? ['--unshallow'] : []),
    '--tags',
    '--',
    cloneUrl,
    `+${sha}:refs/conveyor/head`,
  ]);
  if (fetch.exitCode !== 0) {
    throw ApplicationFailure.retryable(
      `cannot fetch the tags of ${cloneUrl}: ${fetch.output.trim().slice(-500)}`,
      FailureType.CheckoutFailed,
    );
  }
  const described = await git(['describe', '--tags', '--long', '--match', 'v[0-9]*', '--match', '[0-9]*', sha]);
  const m = /^(.+)-(\d+)-g([0-9a-f]+)$/.exec(described.output.trim());
  if (described.exitCode === 0 && m) {
    const tag = m[1];
    const base = tag.replace(/^v/, '');
    // Commits after the tag sort after it in dpkg and rpm alike: 1.2.3 < 1.2.3+4.g1a2b3c4.
    const version = m[2] === '0' ? base : `${base}+${m[2]}.g${m[3]}`;
    if (VERSION_PATTERN.test(version)) return { version, source: `tag ${tag}` };
    throw ApplicationFailure.nonRetryable(
      `the nearest tag of ${sha}, ${JSON.stringify(tag)}, does not make a version (${JSON.stringify(version)}); ` +
        'add a VERSION file such as 1.4.0 or tag the release as v1.4.0',
      FailureType.VersionUnknown,
    );
  }
  throw ApplicationFailure.nonRetryable(
    `cannot tell the version of ${sha}: no VERSION file at that commit and no version tag (v1.2.3 or 1.2.3) ` +
      'reachable from it; add a VERSION file such as 1.0.0 or tag a commit',
    FailureType.VersionUnknown,
  );
}

/** The commit time, for SOURCE_DATE_EPOCH: the built-in packager then builds the same bytes twice. */
export async function commitEpoch(src: string, sha: string, signal?: AbortSignal): Promise<string> {
  const r = await runProcess('git', ['-C', src, 'show', '-s', '--format=%ct', sha], { signal });
  const epoch = r.output.trim();
  return r.exitCode === 0 && /^\d+$/.test(epoch) ? epoch : '0';
}
