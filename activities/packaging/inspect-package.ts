// Validation of a package the package step (or the built-in packager) wrote, before it is stored:
// the right format for the distro, a whole and readable archive, and exactly the version this
// build must carry. Name, version and architecture are read from the package itself with the
// format's own tools (dpkg-deb, rpm), never from the file name, because the repository index
// and the hosts will see what the package declares.
//
// Hazard: `rpm -qp` reads a file that is not an rpm as a manifest (a list of more packages to
// query), so the lead bytes are checked first and `--nomanifest` is passed.
//
// What a package declares is copied into signed indexes: a .deb's control file passes the
// publisher's own check (activities/repository/deb-control.ts: field names, no index-owned fields,
// one paragraph) here already, so a bad one fails the package stage naming the field; an rpm's
// text tags must hold no control characters, which XML (primary.xml) cannot carry.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../common/failures';
import type { DistroSpec } from '../../common/types';
import { runProcess } from '../exec/process';
import { ControlError, parseControl } from '../repository/deb-control';

export interface PackageFacts {
  file: string;
  name: string;
  /** `<version>-<build>` for both formats (rpm: VERSION-RELEASE). */
  version: string;
  arch: string;
  format: 'deb' | 'rpm';
}

export interface Expected {
  distro: string;
  distroSpec: DistroSpec;
  version: string;
  build: number;
}

const RPM_MAGIC = Buffer.from([0xed, 0xab, 0xee, 0xdb]);

export function packageFormatOf(file: string): 'deb' | 'rpm' | undefined {
  if (file.endsWith('.deb')) return 'deb';
  if (file.endsWith('.rpm')) return 'rpm';
  return undefined;
}

/** Reads and checks `file`; throws a non-retryable BadPackage that names the file and the reason. */
export async function inspectPackage(file: string, expected: Expected, signal?: AbortSignal): Promise<PackageFacts> {
  const name = path.basename(file);
  const { distro, distroSpec } = expected;
  const bad = (why: string) =>
    ApplicationFailure.nonRetryable(`package ${name} for ${distro}: ${why}`, FailureType.BadPackage);
  const format = packageFormatOf(name);
  if (format !== distroSpec.format) {
    throw bad(`a ${format ?? 'non-package'} file, but ${distro} takes ${distroSpec.format} packages`);
  }
  // dpkg-deb says precisely what is wrong with a bad .deb; rpm needs the guard (module comment).
  if (format === 'rpm' && !readHead(file, RPM_MAGIC.length).equals(RPM_MAGIC)) {
    throw bad('not a valid rpm package (it does not start with the rpm lead)');
  }
  const facts = format === 'deb' ? await readDeb(file, bad, signal) : await readRpm(file, bad, signal);
  const want = `${expected.version}-${expected.build}`;
  if (facts.version !== want) {
    throw bad(`its version is ${facts.version}, but this build must be ${want}`);
  }
  const independent = format === 'deb' ? 'all' : 'noarch';
  if (facts.arch !== distroSpec.arch && facts.arch !== independent) {
    throw bad(`its architecture is ${facts.arch}, but ${distro} is ${distroSpec.arch} (or ${independent})`);
  }
  return { file: name, format, ...facts };
}

type Bad = (why: string) => ApplicationFailure;

async function readDeb(file: string, bad: Bad, signal?: AbortSignal) {
  // `--control` extracts without parsing, so our check names the field before dpkg's parser does.
  // Into a fresh directory of our own, never beside the file: $CONVEYOR_OUT is the step's to shape
  // (a symlink planted there would redirect the extraction).
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-control-'));
  const dir = path.join(tmp, 'control');
  try {
    const extract = await runProcess('dpkg-deb', ['--control', '--', file, dir], { signal, env: toolEnv() });
    if (extract.exitCode !== 0) throw bad(`dpkg-deb cannot read it: ${errorText(extract.output)}`);
    try {
      parseControl(fs.readFileSync(path.join(dir, 'control'), 'utf8'));
    } catch (err) {
      if (err instanceof ControlError) throw bad(err.message);
      throw bad(`its control file cannot be read (${(err as Error).message})`);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const show = await runProcess(
    'dpkg-deb',
    ['--show', '--showformat=CONVEYOR\t${Package}\t${Version}\t${Architecture}\n', '--', file],
    { signal, env: toolEnv() },
  );
  const line = show.output.split('\n').find((l) => l.startsWith('CONVEYOR\t'));
  if (show.exitCode !== 0 || !line) throw bad(`dpkg-deb cannot read it: ${errorText(show.output)}`);
  // --show reads only the control member; listing the data member proves the whole archive is there.
  const contents = await runProcess('dpkg-deb', ['--contents', '--', file], { signal, env: toolEnv() });
  if (contents.exitCode !== 0) throw bad(`dpkg-deb cannot read its contents: ${errorText(contents.output)}`);
  const [, name, version, arch] = line.split('\t');
  return { name, version, arch };
}

/** Text tags that createrepo_c copies into primary/filelists/other.xml. */
const RPM_TEXT_TAGS = [
  'SUMMARY',
  'DESCRIPTION',
  'URL',
  'LICENSE',
  'VENDOR',
  'PACKAGER',
  'GROUP',
  'BUILDHOST',
  'SOURCERPM',
  '[%{FILENAMES}\\n]',
  '[%{PROVIDENAME} %{PROVIDEVERSION}\\n]',
  '[%{REQUIRENAME} %{REQUIREVERSION}\\n]',
  '[%{CONFLICTNAME} %{CONFLICTVERSION}\\n]',
  '[%{OBSOLETENAME} %{OBSOLETEVERSION}\\n]',
  '[%{CHANGELOGNAME}\\n%{CHANGELOGTEXT}\\n]',
];
// XML 1.0 allows TAB, LF and CR of the C0 controls (createrepo_c refuses the rest, and then
// silently leaves the package out of the repository).
// eslint-disable-next-line no-control-regex
const XML_FORBIDDEN = /[\x00-\x08\x0b\x0c\x0e-\x1f]/;

async function readRpm(file: string, bad: Bad, signal?: AbortSignal) {
  const check = await runProcess('rpm', ['-K', '--nosignature', '--', file], { signal, env: toolEnv() });
  if (check.exitCode !== 0) throw bad(`rpm digest check failed: ${errorText(check.output)}`);
  for (const tag of RPM_TEXT_TAGS) {
    const format = tag.startsWith('[') ? tag : `%{${tag}}`;
    const q = await runProcess('rpm', ['-qp', '--nomanifest', '--nosignature', '--queryformat', format, '--', file], {
      signal,
      env: toolEnv(),
    });
    if (q.exitCode === 0 && XML_FORBIDDEN.test(q.output)) {
      const name = /%\{(\w+)\}/.exec(format)?.[1] ?? tag;
      throw bad(`its ${name} holds a control character, which the repository's XML metadata cannot carry`);
    }
  }
  const q = await runProcess(
    'rpm',
    ['-qp', '--nomanifest', '--queryformat', 'CONVEYOR\t%{NAME}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\n', '--', file],
    { signal, env: toolEnv() },
  );
  const line = q.output.split('\n').find((l) => l.startsWith('CONVEYOR\t'));
  if (q.exitCode !== 0 || !line) throw bad(`rpm cannot read it: ${errorText(q.output)}`);
  const [, name, version, release, arch] = line.split('\t');
  return { name, version: `${version}-${release}`, arch };
}

function readHead(file: string, n: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(n);
    const got = fs.readSync(fd, buf, 0, n, 0);
    return buf.subarray(0, got);
  } finally {
    fs.closeSync(fd);
  }
}

function errorText(output: string): string {
  return output.trim().split('\n').slice(-3).join(' / ').slice(0, 500) || 'no output';
}

/** The format tools get a minimal, fixed environment: no locale surprises in what we parse. */
export function toolEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C', ...extra };
}
