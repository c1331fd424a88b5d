// What the YUM index needs from an rpm signed at package time (createrepo_c's three XML fragments
// for it, its size, MD5 and SHA-256), made once by signPackages from the very file it signed and
// stored (one createrepo_c over all the rpms it signed for a build), and stored beside it as
// `<signed key>.yum-index.json`. The ArtifactRef names that object and its SHA-256 (`yumIndex`).
// A publish (staging, then production: the same bytes twice) then neither downloads the rpm nor
// runs createrepo_c and `rpm -K` over it: the pool file is a server-side copy, verified by S3's own
// SHA-256 against the reference's. Before, each publish downloaded every rpm,
// checked its header and signature and ran createrepo_c over all of them (issue 14 §5: 4.3–4.8×
// createrepo_c alone for 2,000 rpms).
//
// Trust: the facts are as trusted as the reference that names them. Only signPackages, on the
// orchestrator, makes references that claim a signer (it refuses a build worker's reference that
// claims one), right after it has checked that the stored file verifies against our key and is the
// builder's rpm with only a signature added; so a publish uses facts only for a reference signed by
// the key it publishes with. The facts object is held to the SHA-256 the reference records (in the
// workflow history), so a later change to it (the builders may write to the artifacts bucket) is
// noticed. Everything that reaches the index is checked again at each publish: each fragment must
// be one well-formed <package> element (it cannot close the document around it), name the
// reference's SHA-256 as its pkgid, and list the reference's name, version and arch. When the
// facts object is missing or does not pass, the publish downloads the rpm and reads it as before,
// and says so; so do references without facts (runs recorded before).
import fs from 'node:fs';
import path from 'node:path';
import type { ArtifactRef } from '../../common/types';
import { factsObject, readPointedFacts } from './deb-index-facts';
import { RepositoryFailure, nonRetryable } from './failures';
import { hashFile, type FileHashes } from './s3-objects';
import type { S3Client } from '@aws-sdk/client-s3';
import { createrepoFragments, primaryNevra, type YumFragments } from './yum-format';

export interface RpmIndexFacts {
  /** createrepo_c's fragments, the primary one located at `Packages/<file>`. */
  fragments: YumFragments;
  hashes: Pick<FileHashes, 'md5' | 'sha256' | 'size'>;
}

const FORMAT = 'conveyor-yum-index/1';
/** A fragment larger than this is not used (a package listing tens of thousands of files is
 * read from the rpm instead): the check below reads it in memory. */
const MAX_FRAGMENT_CHARS = 16 * 1024 * 1024;

/** Where an rpm's facts are stored: beside it. */
export function yumIndexKey(artifactKey: string): string {
  return `${artifactKey}.yum-index.json`;
}

/** Where signPackages' facts locate the rpm (yum-format.ts `relocated` moves it when a publish
 * puts the file elsewhere). */
function factsLocation(file: string): string {
  return `Packages/${file}`;
}

/** The facts of local rpms, as signPackages stores them (one object each, in order): one
 * createrepo_c over all of them, in a directory of `dir`. Refused as BadPackage when createrepo_c
 * cannot describe one or describes another package than its reference. */
export async function readRpmIndexFacts(
  rpms: { file: string; ref: ArtifactRef }[],
  dir: string,
  signal?: AbortSignal,
): Promise<Buffer[]> {
  if (rpms.length === 0) return [];
  const work = await fs.promises.mkdtemp(path.join(dir, 'yum-facts-'));
  try {
    const [hashes, { byId, output }] = await Promise.all([
      Promise.all(rpms.map((r) => hashFile(r.file))),
      createrepoFragments(
        rpms.map((r) => ({ file: r.file, name: r.ref.file })),
        work,
        signal,
      ),
    ]);
    return rpms.map(({ ref }, i) => {
      const made = byId.get(hashes[i].sha256);
      if (!made?.filelists || !made.other) {
        const said = output
          .split('\n')
          .filter((l) => l.includes(ref.file))
          .join(' / ')
          .slice(-500);
        throw nonRetryable(
          RepositoryFailure.BadPackage,
          `${ref.file} (${ref.key}): createrepo_c cannot describe it in the repository metadata: ${said || '(no metadata for it)'}`,
          { key: ref.key },
        );
      }
      const facts = rpmIndexFactsOf(made, hashes[i], ref);
      if (typeof facts === 'string') {
        throw nonRetryable(RepositoryFailure.BadPackage, `${ref.file} (${ref.key}): ${facts}`, { key: ref.key });
      }
      return facts;
    });
  } finally {
    await fs.promises.rm(work, { recursive: true, force: true });
  }
}

/** The stored form of createrepo_c's fragments of one rpm (at `Packages/<file>`) and its hashes;
 * the reason as a string when they do not describe `ref`. */
function rpmIndexFactsOf(
  made: YumFragments,
  hashes: RpmIndexFacts['hashes'],
  ref: Pick<ArtifactRef, 'name' | 'version' | 'arch' | 'file'>,
): Buffer | string {
  // The file's time is its mtime when createrepo_c read it, a moment of this attempt: the build
  // time stands in for it, so the facts are a function of the file's bytes alone (a retry makes
  // the same).
  const fragments = {
    ...made,
    primary: made.primary.replace(
      /<time file="\d+" build="(\d+)"\/>/,
      (_m, build: string) => `<time file="${build}" build="${build}"/>`,
    ),
  };
  const problem = fragmentProblem(fragments, { ...ref, sha256: hashes.sha256 });
  if (problem) return problem;
  const { md5, sha256, size } = hashes;
  return Buffer.from(JSON.stringify({ format: FORMAT, size, md5, sha256, ...fragments }));
}

/** Parses stored facts and holds them to `ref`; the reason they cannot be used, as a string. */
export function parseRpmIndexFacts(bytes: Buffer, ref: ArtifactRef): RpmIndexFacts | string {
  const o = factsObject(bytes, FORMAT);
  if (typeof o === 'string') return o;
  if (typeof o.md5 !== 'string' || !/^[0-9a-f]{32}$/.test(o.md5)) return 'its md5 is not a hash';
  if (o.sha256 !== ref.sha256.toLowerCase() || o.size !== ref.size) {
    return `it describes ${String(o.sha256)} (${String(o.size)} bytes), not the reference's ${ref.sha256} (${ref.size} bytes)`;
  }
  const { primary, filelists, other } = o;
  if (typeof primary !== 'string' || typeof filelists !== 'string' || typeof other !== 'string') {
    return 'it lacks a fragment';
  }
  const fragments = { primary, filelists, other };
  const problem = fragmentProblem(fragments, ref);
  if (problem) return problem;
  return { fragments, hashes: { md5: o.md5, sha256: ref.sha256.toLowerCase(), size: ref.size } };
}

/** A reference's facts, read and checked; the reason when they cannot be used. */
export function fetchRpmIndexFacts(
  s3: S3Client,
  bucket: string,
  ref: ArtifactRef,
  signal?: AbortSignal,
): Promise<RpmIndexFacts | string> {
  return readPointedFacts(s3, bucket, ref.yumIndex, (bytes) => parseRpmIndexFacts(bytes, ref), signal);
}

/** Why the fragments cannot go into an index for `ref`, or undefined. */
function fragmentProblem(
  f: YumFragments,
  ref: Pick<ArtifactRef, 'sha256' | 'name' | 'version' | 'arch' | 'file'>,
): string | undefined {
  for (const kind of ['primary', 'filelists', 'other'] as const) {
    if (f[kind].length > MAX_FRAGMENT_CHARS)
      return `its ${kind} fragment is larger than ${MAX_FRAGMENT_CHARS} characters`;
    if (!oneElement(f[kind], 'package')) return `its ${kind} fragment is not one well-formed <package> element`;
  }
  const sha = ref.sha256.toLowerCase();
  if (!f.primary.includes(`<checksum type="sha256" pkgid="YES">${sha}</checksum>`)) {
    return `its primary fragment does not name ${sha} as the package's checksum`;
  }
  if (!f.primary.includes(`<location href="${factsLocation(ref.file)}"/>`)) {
    return `its primary fragment does not locate the rpm at ${factsLocation(ref.file)}`;
  }
  const listed = primaryNevra(f.primary);
  if (listed.name !== ref.name || listed.version !== ref.version || listed.arch !== ref.arch) {
    return (
      `its primary fragment lists ${String(listed.name)} ${String(listed.version)} ${String(listed.arch)}, ` +
      `but the reference says ${ref.name} ${ref.version} ${ref.arch}`
    );
  }
  const head = `<package pkgid="${sha}" name="${ref.name}" arch="${ref.arch}">`;
  for (const kind of ['filelists', 'other'] as const) {
    if (!f[kind].startsWith(head)) return `its ${kind} fragment does not begin with ${head}`;
  }
  return undefined;
}

// XML as libxml2 (createrepo_c) writes it: elements and attributes in double quotes, text with
// the five entities and character references, no comments, CDATA or processing instructions.
const TAG = /<(\/?)([A-Za-z_][\w.:-]*)((?:\s+[A-Za-z_][\w.:-]*="[^"<]*")*)\s*(\/?)>/y;
// eslint-disable-next-line no-control-regex -- the control characters XML 1.0 cannot hold
const BAD_TEXT = /&(?!(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);)|[\0-\x08\x0b\x0c\x0e-\x1f]/;

/** Whether `xml` is exactly one well-formed element named `root` (module comment). */
export function oneElement(xml: string, root: string): boolean {
  const open: string[] = [];
  let at = 0;
  let closed = false;
  while (at < xml.length) {
    const lt = xml.indexOf('<', at);
    const text = xml.slice(at, lt === -1 ? xml.length : lt);
    if (BAD_TEXT.test(text) || (open.length === 0 && text !== '')) return false;
    if (lt === -1) break;
    if (closed) return false;
    TAG.lastIndex = lt;
    const m = TAG.exec(xml);
    if (!m) return false;
    const [whole, end, name, attrs, empty] = m;
    if (BAD_TEXT.test(attrs)) return false;
    if (open.length === 0 && (end || empty || name !== root)) return false;
    if (end) {
      if (attrs !== '' || empty || open.pop() !== name) return false;
      closed = open.length === 0;
    } else if (!empty) {
      open.push(name);
    }
    at = lt + whole.length;
  }
  return closed;
}
