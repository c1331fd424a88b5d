// The APT side of publishing (https://wiki.debian.org/DebianRepository/Format): one suite
// `<codename>-<channel>` per distro and channel, so a channel is a sources.list line, not a second
// bucket. Layout under `apt/`:
//   pool/<channel>/<codename>/<name>/<file>.deb          one pool per channel keeps retention local
//   dists/<suite>/main/binary-<arch>/Packages(.gz,.xz)   `Architecture: all` is listed in every arch
//   dists/<suite>/main/Contents-<arch>(.gz)              file → package, what `apt-file` searches
//   dists/<suite>/main/…/by-hash/{SHA256,SHA512}/<h>     Acquire-By-Hash: a client holding an older
//                                                        Release still finds the indexes it names
//                                                        (apt asks for the strongest hash listed)
//   dists/<suite>/Release, Release.gpg, InRelease        the switch; InRelease (what apt reads first)
//                                                        last of all
// Release carries what users of Debian's archives expect: MD5Sum/SHA256/SHA512 sums, `Origin:
// Conveyor` and `Label: Conveyor <environment>` (clients pin staging apart from production), and
// `Valid-Until` (a frozen mirror or a replayed old index is refused once it passes; the
// re-sign activity, resign-release.ts, renews it before expiry).
// Architectures are Debian's names: a distro spec recorded with rpm names (x86_64) is mapped
// (common/distro-arch.ts), or arch-all packages would be listed where no amd64 client looks.
// Packages.xz comes from xz-utils' `xz` (Node has no xz): single-threaded, so the same Packages
// always gives the same bytes and the same by-hash name. Preset 1, not 9: on a Packages of 2,000
// debs (1.2 MB) -9 took 276 ms of a 620 ms publish and -1 96 ms, for a file 19% larger (clients
// fetch it once per update, by-hash); presets 6 to 9 cost the same as 9 on inputs this small. Contents lists the files of packages
// ingested since Contents existed; a package published before has no recorded file list and is
// left out of Contents (it is still in Packages) until a new build replaces it.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import type { ArtifactRef } from '../../common/types';
import { debianArch } from '../../common/distro-arch';
import { readDebs } from './deb-archive';
import { checkedStanza } from './deb-control';
import { debFactsOf } from './deb-index-facts';
import type { Candidate, IndexFile, Ingested, IngestContext, RepositoryFormat } from './publish-types';
import type { PublishedPackage } from './repository-state';
import { mapLimit, sameObject } from './s3-objects';
import type { RepositoryTarget } from './types';
import { compareDebVersions } from './version-compare';

const digest = (alg: string, b: Buffer) => crypto.createHash(alg).update(b).digest('hex');

/** RFC 2822 in UTC, as Debian's archives write it. */
export function releaseDate(d: Date): string {
  return d.toUTCString().replace(/GMT$/, 'UTC');
}

/** `xz -1 -T1` of `data`: deterministic for the same input. */
export function xzCompress(data: Buffer, signal?: AbortSignal): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn('xz', ['-1', '-T1', '-c', '-q'], { stdio: ['pipe', 'pipe', 'pipe'], signal });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) =>
      reject(new Error(`xz failed (${e.message}): install xz-utils (apt-get install xz-utils)`)),
    );
    child.on('close', (code) =>
      code === 0
        ? resolve(Buffer.concat(out))
        : reject(new Error(`xz exited ${code}: ${Buffer.concat(err).toString().slice(0, 300)}`)),
    );
    child.stdin.end(data);
  });
}

/** A Contents file: one line per path, `path<spaces>section/name[,section/name…]`. */
function contentsOf(packages: PublishedPackage[]): Buffer {
  const owners = new Map<string, Set<string>>();
  for (const p of packages) {
    if (p.meta.contents === undefined) continue;
    const section = /^Section: (\S+)$/m.exec(p.meta.control ?? '')?.[1] ?? 'misc';
    for (const f of p.meta.contents.split('\n').filter(Boolean)) {
      owners.set(f, (owners.get(f) ?? new Set()).add(`${section}/${p.name}`));
    }
  }
  const lines = [...owners.keys()]
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    .map((f) => `${f.padEnd(59)} ${[...owners.get(f)!].sort().join(',')}`);
  return Buffer.from(lines.length ? `${lines.join('\n')}\n` : '');
}

export function aptFormat(input: RepositoryTarget): RepositoryFormat {
  const codename = input.distroSpec.codename ?? input.distro;
  const suite = `${codename}-${input.channel}`;
  const pool = `pool/${input.channel}/${codename}/`;
  const dists = `apt/dists/${suite}/`;
  const signedKeys = [`${dists}Release`, `${dists}Release.gpg`, `${dists}InRelease`];
  const ownArch = debianArch(input.distroSpec.arch);

  return {
    format: 'apt',
    repoUrlPath: 'apt',
    suite,
    stateKey: `conveyor-state/apt/${suite}.json`,
    listPrefixes: [`apt/${pool}`, dists],
    signedKeys,
    owns: (key) => key.startsWith(`apt/${pool}`) || (key.startsWith(dists) && key.includes('/by-hash/')),
    poolKey: (ref: ArtifactRef) => `apt/${pool}${ref.name}/${ref.file}`,
    poolContentType: 'application/vnd.debian.binary-package',
    compareVersions: compareDebVersions,
    stale: () => false,

    async ingest(candidates: Candidate[], ctx: IngestContext): Promise<Ingested[]> {
      // A candidate with the builder's facts (deb-index-facts.ts) is not here as a file; the rest
      // are read in-process where deb-archive.ts can, with dpkg-deb otherwise: the same checks.
      const local = candidates.filter((c) => !c.facts);
      const read = await readDebs(
        local.map((c) => c.file!),
        ctx.signal,
      );
      const readOf = new Map(local.map((c, i) => [c, read[i]]));
      return mapLimit(candidates, 4, async (c) => {
        const { ref, key, source } = c;
        const facts = c.facts ?? (await debFactsOf(c.file!, ref, readOf.get(c), c.hashes, ctx.signal));
        const h = facts.hashes;
        const pkg: PublishedPackage = {
          name: ref.name,
          version: ref.version,
          arch: ref.arch,
          artifact: ref,
          key,
          sha256: h.sha256,
          md5: h.md5,
          size: h.size,
          meta: { control: facts.control, sha1: h.sha1, sha512: h.sha512, contents: facts.files.join('\n') },
        };
        // A retry after a crash finds the file already uploaded: same key, same bytes.
        const there =
          sameObject(ctx.listing.get(key), h.size, h.md5) &&
          (await ctx.store.head(key, ctx.signal))?.sha256 === h.sha256;
        // The pool file is the artifact byte for byte: a server-side copy can stand in for the upload.
        return { pkg, upload: there ? undefined : (c.file ?? c.fetch), copyFrom: source };
      });
    },

    async indexFiles(packages, extra, signal) {
      // Suites written before names were normalised may list `x86_64`: it is not an apt arch.
      const architectures = [...new Set([...(extra.architectures ?? []).map(debianArch), ownArch])].sort();
      const files: IndexFile[] = [];
      const add = (dir: string, name: string, body: Buffer, type: string) => {
        for (const alg of ['SHA256', 'SHA512']) {
          const h = digest(alg.toLowerCase(), body);
          files.push({ key: `${dir}by-hash/${alg}/${h}`, body, contentType: type, hashed: true });
        }
        files.push({ key: `${dir}${name}`, body, contentType: type, hashed: false });
      };
      for (const arch of architectures) {
        const listed = packages.filter((p) => p.arch === arch || p.arch === 'all');
        const stanzas = listed.map(
          (p) =>
            `${checkedStanza(p.meta.control, `${p.name} ${p.version} ${p.arch} (${p.key})`)}` +
            `Filename: ${p.key.slice('apt/'.length)}\nSize: ${p.size}\n` +
            `MD5sum: ${p.md5}\nSHA1: ${p.meta.sha1}\nSHA256: ${p.sha256}\n` +
            (p.meta.sha512 ? `SHA512: ${p.meta.sha512}\n` : ''),
        );
        const text = Buffer.from(stanzas.join('\n'));
        // gzip without a timestamp: the same packages give the same bytes, hence the same by-hash name.
        const gz = zlib.gzipSync(text, { level: 9 });
        const xz = await xzCompress(text, signal);
        const dir = `${dists}main/binary-${arch}/`;
        add(dir, 'Packages', text, 'text/plain; charset=utf-8');
        add(dir, 'Packages.gz', gz, 'application/gzip');
        add(dir, 'Packages.xz', xz, 'application/x-xz');
        // apt looks a target up in Release by its uncompressed name (Debian lists it too): both are here.
        const contents = contentsOf(listed);
        add(`${dists}main/`, `Contents-${arch}`, contents, 'text/plain; charset=utf-8');
        add(`${dists}main/`, `Contents-${arch}.gz`, zlib.gzipSync(contents, { level: 9 }), 'application/gzip');
      }
      return { files, extra: { ...extra, architectures } };
    },

    async signedFiles(files, extra, signer, facts) {
      const listed = files.filter((f) => !f.hashed);
      const lines = (alg: string) =>
        listed.map((f) => ` ${digest(alg, f.body)} ${f.body.length} ${f.key.slice(dists.length)}`);
      const release = Buffer.from(
        [
          'Origin: Conveyor',
          `Label: Conveyor ${facts.environment}`,
          `Suite: ${suite}`,
          `Codename: ${suite}`,
          `Date: ${releaseDate(facts.now)}`,
          ...(facts.validUntil ? [`Valid-Until: ${releaseDate(facts.validUntil)}`] : []),
          `Architectures: ${(extra.architectures ?? []).join(' ')}`,
          'Components: main',
          `Description: Conveyor ${input.channel} packages for ${codename} (${facts.environment})`,
          'Acquire-By-Hash: yes',
          'MD5Sum:',
          ...lines('md5'),
          'SHA256:',
          ...lines('sha256'),
          'SHA512:',
          ...lines('sha512'),
          '',
        ].join('\n'),
      );
      return signRelease(release, signer, signedKeys);
    },
  };
}

/** Release, Release.gpg and InRelease for the given Release text, in upload order. */
export async function signRelease(
  release: Buffer,
  signer: { detachSign(d: Buffer): Promise<string>; clearsign(d: Buffer): Promise<string> },
  keys: string[],
): Promise<IndexFile[]> {
  const detached = await signer.detachSign(release);
  const inline = await signer.clearsign(release);
  return [
    { key: keys[0], body: release, contentType: 'text/plain; charset=utf-8', hashed: false },
    { key: keys[1], body: Buffer.from(detached), contentType: 'application/pgp-signature', hashed: false },
    { key: keys[2], body: Buffer.from(inline), contentType: 'text/plain; charset=utf-8', hashed: false },
  ];
}
