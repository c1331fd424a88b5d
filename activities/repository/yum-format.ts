// The YUM/DNF side of publishing (https://docs.pulpproject.org/en/2.19/plugins/pulp_rpm/tech-reference/yum-repo-metadata.html,
// createrepo_c's format). One repository per distro and channel under `yum/<distro>/<channel>/`:
//   Packages/<file>.rpm                   every rpm signed with rpmsign (dnf gpgcheck=1 checks it)
//   repodata/<sha256>-{primary,filelists,other}.xml.gz   content-named, kept one generation back
//   repodata/repomd.xml, repomd.xml.asc   the switch (dnf repo_gpgcheck=1 checks the .asc)
// Incremental without the old rpms: createrepo_c reads only the new (signed) rpms, and each
// package's three XML fragments are kept in the state manifest; the metadata files are those
// fragments concatenated. An rpm signed at package time by this key whose reference names
// signPackages' facts (rpm-index-facts.ts, checked when fetched) is not read at all: its fragments
// and hashes are the facts', and its pool file a server-side copy of the artifact.
// createrepo_c XML-escapes every header value (`<`, `&`, quotes), so a fragment cannot close its
// <package>; a value XML cannot hold at all (a control character) makes
// createrepo_c drop the package, which is refused here as BadPackage (and earlier by the package
// stage, inspect-package.ts). An rpm signed once at package time by the current key (artifact
// `signer`, patch sign-at-package, sign-packages.ts) is uploaded byte for byte: staging and
// production serve the very file the package stage recorded. Older artifacts are signed here, at
// each publish; signing is not reproducible (the signature carries a time), so an rpm already
// uploaded for the same artifact and key is reused, never signed again.
// Key rotation re-signs every rpm of the channel from its artifact, in place: until the new
// repomd.xml is live a client may see a checksum mismatch, and artifacts must still exist.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import type { ArtifactRef } from '../../common/types';
import { runChecked, runProcess } from '../exec/process';
import { RepositoryFailure, nonRetryable } from './failures';
import { evrOf, readRpmNevra } from './rpm-header';
import { rpmSignatureProblems } from './rpm-signature';
import type { Candidate, IndexFile, Ingested, IngestContext, RepositoryFormat } from './publish-types';
import type { PublishedPackage } from './repository-state';
import { hashFile, mapLimit, sha256Hex } from './s3-objects';
import type { RepositoryTarget } from './types';
import { compareRpmVersions } from './version-compare';

const KINDS = ['primary', 'filelists', 'other'] as const;
type Kind = (typeof KINDS)[number];
/** One package's <package> elements of primary.xml, filelists.xml and other.xml. */
export type YumFragments = Record<Kind, string>;

const ROOTS: Record<Kind, string> = {
  primary:
    '<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="N">',
  filelists: '<filelists xmlns="http://linux.duke.edu/metadata/filelists" packages="N">',
  other: '<otherdata xmlns="http://linux.duke.edu/metadata/other" packages="N">',
};
const CLOSE: Record<Kind, string> = { primary: '</metadata>', filelists: '</filelists>', other: '</otherdata>' };

/** Checks that an rpm declares what its reference says (name, [epoch:]version-release, arch).
 * The header is read in-process (rpm-header.ts); an rpm that reader does not accept as matching
 * goes to `rpm -qp`, whose answer and message are the reference. */
export async function checkRpm(file: string, ref: ArtifactRef, signal?: AbortSignal): Promise<void> {
  const read = await readRpmNevra(file).catch(() => undefined);
  if (read && read.name === ref.name && evrOf(read) === ref.version && read.arch === ref.arch) return;
  // A marker line: rpm's warnings share the output stream.
  const out = await runProcess(
    'rpm',
    [
      '-qp',
      '--nosignature',
      '--nodigest',
      '--qf',
      'CONVEYOR %{NAME} %{EPOCHNUM} %{VERSION} %{RELEASE} %{ARCH}\\n',
      file,
    ],
    { signal },
  );
  const line = out.output.split('\n').find((l) => l.startsWith('CONVEYOR '));
  if (out.exitCode !== 0 || !line) {
    throw nonRetryable(
      RepositoryFailure.BadPackage,
      `${ref.file} (${ref.key}) is not a valid rpm: ${out.tail.slice(-500)}`,
    );
  }
  const [, name, epoch, version, release, arch] = line.trim().split(' ');
  const evr = epoch === '0' ? `${version}-${release}` : `${epoch}:${version}-${release}`;
  if (name !== ref.name || evr !== ref.version || arch !== ref.arch) {
    throw nonRetryable(
      RepositoryFailure.BadPackage,
      `${ref.file} declares ${name} ${evr} ${arch}, but its artifact reference says ${ref.name} ${ref.version} ${ref.arch}`,
      { key: ref.key, declared: { name, version: evr, arch } },
    );
  }
}

/** Name, [epoch:]version-release and arch of a primary.xml <package> element, as written (XML
 * escapes left in: references hold none of `<>&"'`, so an escaped value never compares equal). */
export function primaryNevra(fragment: string): { name?: string; version?: string; arch?: string } {
  const name = /<name>([^<]*)<\/name>/.exec(fragment)?.[1];
  const arch = /<arch>([^<]*)<\/arch>/.exec(fragment)?.[1];
  const v = /<version epoch="([^"]*)" ver="([^"]*)" rel="([^"]*)"\/>/.exec(fragment);
  const version = v ? (v[1] === '0' ? `${v[2]}-${v[3]}` : `${v[1]}:${v[2]}-${v[3]}`) : undefined;
  return { name, version, arch };
}

/** createrepo_c over the given rpms, each at `Packages/<name>`; each package's XML fragments keyed
 * by its sha256 (pkgid). */
export async function createrepoFragments(
  files: { file: string; name: string }[],
  dir: string,
  signal?: AbortSignal,
): Promise<{ byId: Map<string, YumFragments>; output: string }> {
  const repo = path.join(dir, 'createrepo');
  const dirs = new Set([
    path.join(repo, 'Packages'),
    ...files.map((f) => path.dirname(path.join(repo, 'Packages', f.name))),
  ]);
  for (const d of dirs) await fs.promises.mkdir(d, { recursive: true });
  // A hard link where it can be (the same directory tree): createrepo_c only reads. Synchronous:
  // a link is one quick system call, and a thread-pool round trip per rpm costs more.
  for (const f of files) {
    const to = path.join(repo, 'Packages', f.name);
    try {
      fs.linkSync(f.file, to);
    } catch {
      await fs.promises.copyFile(f.file, to);
    }
  }
  const output = await runChecked(
    'createrepo_c',
    ['--no-database', '--simple-md-filenames', '--checksum', 'sha256', '--quiet', repo],
    {
      signal,
    },
  );
  const read = (kind: Kind) =>
    zlib.gunzipSync(fs.readFileSync(path.join(repo, 'repodata', `${kind}.xml.gz`))).toString('utf8');
  const byId = new Map<string, YumFragments>();
  // `</package>` cannot occur inside a package element: text content is escaped.
  for (const m of read('primary').matchAll(/<package type="rpm">[\s\S]*?<\/package>/g)) {
    const id = /<checksum type="sha256" pkgid="YES">([0-9a-f]{64})<\/checksum>/.exec(m[0])?.[1];
    if (id) byId.set(id, { primary: m[0], filelists: '', other: '' });
  }
  for (const kind of ['filelists', 'other'] as const) {
    for (const m of read(kind).matchAll(/<package pkgid="([0-9a-f]{64})"[\s\S]*?<\/package>/g)) {
      const entry = byId.get(m[1]);
      if (entry) entry[kind] = m[0];
    }
  }
  await fs.promises.rm(repo, { recursive: true, force: true });
  return { byId, output };
}

/** The primary fragment with its `<location>` moved from `Packages/<file>` (where signPackages'
 * facts put every rpm) to `location` (a re-signed rpm's subfolder). */
export function relocated(primary: string, file: string, location: string): string {
  const from = `<location href="Packages/${file}"/>`;
  if (location === `Packages/${file}`) return primary;
  if (!primary.includes(from)) throw new Error(`internal: the fragment of ${file} does not locate it at Packages/`);
  const attr = location.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/"/g, '&quot;');
  return primary.replace(from, () => `<location href="${attr}"/>`);
}

/** `<repository>/Packages/<last 16 hex of the fingerprint>/<file>`: where an rpm re-signed by
 * another key than the one it was published with goes. */
export function resignedKey(root: string, file: string, fingerprint: string): string {
  return `${root}Packages/${fingerprint.slice(-16).toLowerCase()}/${file}`;
}

export function yumFormat(input: RepositoryTarget): RepositoryFormat {
  const root = `yum/${input.distro}/${input.channel}/`;
  const signedKeys = [`${root}repodata/repomd.xml`, `${root}repodata/repomd.xml.asc`];
  return {
    format: 'yum',
    repoUrlPath: root.slice(0, -1),
    stateKey: `conveyor-state/${root}state.json`,
    listPrefixes: [root],
    signedKeys,
    owns: (key) => key.startsWith(`${root}Packages/`) || key.startsWith(`${root}repodata/`),
    poolKey: (ref) => `${root}Packages/${ref.file}`,
    poolContentType: 'application/x-rpm',
    compareVersions: compareRpmVersions,
    stale: (pkg, fingerprint) => pkg.signer !== fingerprint,

    async ingest(candidates: Candidate[], ctx: IngestContext): Promise<Ingested[]> {
      const signedByThisKey = (ref: ArtifactRef) => ref.signer !== undefined && ref.signer === ctx.signer.fingerprint;
      /** Where the rpm goes, and what is there now. */
      const placed = async <C extends Candidate>(c: C) => {
        let meta = ctx.listing.has(c.key) ? await ctx.store.head(c.key, ctx.signal) : undefined;
        if (meta?.signer && meta.signer !== ctx.signer.fingerprint) {
          // Published under another key (a rotation): the file stays where it is for clients that
          // hold the previous index and its checksum; the copy signed by this key gets a path of
          // its own (written once), so no cached metadata ever names bytes that changed.
          c = { ...c, key: resignedKey(root, c.ref.file, ctx.signer.fingerprint) };
          meta = ctx.listing.has(c.key) ? await ctx.store.head(c.key, ctx.signal) : undefined;
        }
        // Already there for this artifact, byte for byte (a retry, a re-publish).
        const inPlace = meta?.['artifact-sha256'] === c.ref.sha256 && meta.sha256 === c.ref.sha256;
        return { c, meta, inPlace };
      };
      // Signed at package time by this key, with signPackages' facts (rpm-index-facts.ts): not
      // here as a file, and nothing of it is read again; the facts were checked against the
      // reference when they were fetched. The pool file is a verified server-side copy.
      const described = new Map<Candidate, Ingested>();
      await mapLimit(
        candidates.filter((c) => c.rpmFacts && signedByThisKey(c.ref)),
        8,
        async (candidate) => {
          const { c, inPlace } = await placed(candidate);
          const { fragments, hashes } = c.rpmFacts!;
          const pkg: PublishedPackage = {
            name: c.ref.name,
            version: c.ref.version,
            arch: c.ref.arch,
            artifact: c.ref,
            key: c.key,
            sha256: hashes.sha256,
            md5: hashes.md5,
            size: hashes.size,
            signer: ctx.signer.fingerprint,
            meta: { ...fragments, primary: relocated(fragments.primary, c.ref.file, c.key.slice(root.length)) },
          };
          described.set(candidate, { pkg, upload: inPlace ? undefined : c.fetch, copyFrom: c.source });
        },
      );
      // The rest are here as files (debs alone come with facts and no file otherwise).
      const files = candidates
        .filter((c) => !described.has(c))
        .map((c) => {
          if (c.file === undefined)
            throw new Error(`internal: rpm ${c.ref.key} reached the YUM ingest without its file`);
          return { ...c, file: c.file };
        });
      // Signed at package time by this key: the signatures are checked in batches (one rpm -K
      // per few hundred files), before anything else is read.
      const presigned = files.filter((c) => signedByThisKey(c.ref));
      const verdicts = await rpmSignatureProblems(
        presigned.map((c) => c.file),
        ctx.signer,
        ctx.signal,
      );
      const checked = new Map(presigned.map((c, i) => [c.file, { problem: verdicts[i] }]));
      const prepared = await mapLimit(files, 4, async (candidate) => {
        await checkRpm(candidate.file, candidate.ref, ctx.signal);
        const { c, meta, inPlace } = await placed(candidate);
        if (signedByThisKey(c.ref)) {
          // Signed once at package time by this key: published as it is, never signed again.
          // The SHA-256 was checked against the reference on download; the signature is checked
          // here too, so a reference that merely claims a signer cannot publish an unsigned rpm.
          const verdict = checked.get(c.file);
          if (!verdict) throw new Error(`internal: the signature of ${c.ref.key} was not checked`);
          const problem = verdict.problem;
          if (problem) {
            throw nonRetryable(
              RepositoryFailure.BadPackage,
              `${c.ref.file} (${c.ref.key}) is recorded as signed at package time by ${c.ref.signer}, but ${problem}`,
              { key: c.ref.key },
            );
          }
          return { ...c, reused: inPlace, presigned: true };
        }
        // Uploaded before a crash, for this artifact and this key: reuse it as it is.
        if (meta?.['artifact-sha256'] === c.ref.sha256 && meta.signer === ctx.signer.fingerprint && meta.sha256) {
          const published = `${c.file}.published`;
          const got = await ctx.store.download(c.key, published, ctx.signal);
          if (got?.sha256 === meta.sha256) return { ...c, file: published, reused: true, presigned: false };
        }
        return { ...c, reused: false, presigned: false };
      });
      // Artifacts of runs recorded before sign-at-package, and signed artifacts whose signer is no
      // longer the signing key (rotated since): signed here, at each publish, as before.
      await ctx.signer.signRpms(prepared.filter((p) => !p.reused && !p.presigned).map((p) => p.file));
      // Our hashes and createrepo_c's reading of the same (signed) files, side by side. An rpm
      // signed at package time is published byte for byte: the file is the downloaded artifact,
      // and the hashes taken while it was downloaded are its hashes.
      if (files.length === 0) return candidates.map((c) => described.get(c)!);
      const [withSha, { byId: xml, output }] = await Promise.all([
        mapLimit(prepared, 8, async (p) => ({
          ...p,
          ...(p.presigned && p.hashes ? p.hashes : await hashFile(p.file)),
        })),
        createrepoFragments(
          // The name under Packages/ is the location the index gives (a re-signed rpm's is in a subfolder).
          prepared.map((p) => ({ file: p.file, name: p.key.slice(`${root}Packages/`.length) })),
          ctx.dir,
          ctx.signal,
        ),
      ]);
      const read = withSha.map((p): Ingested => {
        const meta = xml.get(p.sha256);
        if (!meta?.filelists || !meta.other) {
          // createrepo_c exits 0 and leaves out a package whose header it cannot write as XML
          // (control characters in a text tag): the same bytes fail the same way, so not retried.
          const said = output
            .split('\n')
            .filter((l) => l.includes(p.sha256) || l.includes(p.ref.name))
            .join(' / ')
            .slice(0, 500);
          throw nonRetryable(
            RepositoryFailure.BadPackage,
            `${p.ref.file} (${p.ref.key}): createrepo_c cannot describe it in the repository metadata` +
              (said ? `: ${said}` : ' (no metadata for it)'),
            { key: p.ref.key },
          );
        }
        // What the index will say, read by createrepo_c's own parser: it must agree with the
        // reference too (the header was read by ours before signing; two readers, one answer).
        const listed = primaryNevra(meta.primary);
        if (listed.name !== p.ref.name || listed.version !== p.ref.version || listed.arch !== p.ref.arch) {
          throw nonRetryable(
            RepositoryFailure.BadPackage,
            `${p.ref.file} is listed by createrepo_c as ${listed.name} ${listed.version} ${listed.arch}, ` +
              `but its artifact reference says ${p.ref.name} ${p.ref.version} ${p.ref.arch}`,
            { key: p.ref.key, declared: listed },
          );
        }
        const pkg: PublishedPackage = {
          name: p.ref.name,
          version: p.ref.version,
          arch: p.ref.arch,
          artifact: p.ref,
          key: p.key,
          sha256: p.sha256,
          md5: p.md5,
          size: p.size,
          signer: ctx.signer.fingerprint,
          meta,
        };
        // A presigned rpm is published byte for byte: a server-side copy of the artifact will do.
        return { pkg, upload: p.reused ? undefined : p.file, copyFrom: p.presigned ? p.source : undefined };
      });
      // In the candidates' order: `files` kept it, without the described ones.
      let next = 0;
      return candidates.map((c) => described.get(c) ?? read[next++]);
    },

    indexFiles(packages, extra) {
      const files: IndexFile[] = KINDS.map((kind) => {
        const text = [
          '<?xml version="1.0" encoding="UTF-8"?>',
          ROOTS[kind].replace('packages="N"', `packages="${packages.length}"`),
          ...packages.map((p) => p.meta[kind]),
          CLOSE[kind],
          '',
        ].join('\n');
        // gzip without a timestamp: the same packages give the same bytes, hence the same name.
        const body = zlib.gzipSync(Buffer.from(text), { level: 9 });
        return {
          key: `${root}repodata/${sha256Hex(body)}-${kind}.xml.gz`,
          body,
          contentType: 'application/gzip',
          hashed: true,
        };
      });
      return Promise.resolve({ files, extra });
    },

    async signedFiles(files, _extra, signer, { generation, now }) {
      // repomd.xml has no expiry field (dnf has none to check): Valid-Until is apt's alone.
      const stamp = Math.floor(now.getTime() / 1000);
      const data = files.map((f) => {
        const open = zlib.gunzipSync(f.body);
        const kind = KINDS.find((k) => f.key.endsWith(`-${k}.xml.gz`));
        return [
          `  <data type="${kind}">`,
          `    <checksum type="sha256">${sha256Hex(f.body)}</checksum>`,
          `    <open-checksum type="sha256">${sha256Hex(open)}</open-checksum>`,
          `    <location href="${f.key.slice(root.length)}"/>`,
          `    <timestamp>${stamp}</timestamp>`,
          `    <size>${f.body.length}</size>`,
          `    <open-size>${open.length}</open-size>`,
          '  </data>',
        ].join('\n');
      });
      const repomd = Buffer.from(
        [
          '<?xml version="1.0" encoding="UTF-8"?>',
          '<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">',
          `  <revision>${generation}</revision>`,
          ...data,
          '</repomd>',
          '',
        ].join('\n'),
      );
      const asc = await signer.detachSign(repomd);
      return [
        { key: signedKeys[0], body: repomd, contentType: 'application/xml', hashed: false },
        { key: signedKeys[1], body: Buffer.from(asc), contentType: 'application/pgp-signature', hashed: false },
      ];
    },
  };
}
