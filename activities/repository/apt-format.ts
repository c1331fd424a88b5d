// The APT side of publishing (https://wiki.debian.org/DebianRepository/Format): one suite
// `<codename>-<channel>` per distro and channel, so a channel is a sources.list line, not a second
// bucket. Layout under `apt/`:
//   pool/<channel>/<codename>/<name>/<file>.deb          one pool per channel keeps retention local
//   dists/<suite>/main/binary-<arch>/Packages(.gz)       `Architecture: all` is listed in every arch
//   dists/<suite>/main/binary-<arch>/by-hash/SHA256/<h>  Acquire-By-Hash: a client holding an older
//                                                        Release still finds the indexes it names
//   dists/<suite>/Release, Release.gpg, InRelease        the switch; InRelease (what apt reads first)
//                                                        last of all
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import type { ArtifactRef } from '../../common/types';
import { checkedStanza, readDebControl } from './deb-control';
import type { Candidate, IndexFile, Ingested, IngestContext, RepositoryFormat } from './publish-repository';
import type { PublishedPackage } from './repository-state';
import { hashFile, headMetadata, mapLimit, sameObject } from './s3-objects';
import type { RepositoryTarget } from './types';
import { compareDebVersions } from './version-compare';

const digest = (alg: string, b: Buffer) => crypto.createHash(alg).update(b).digest('hex');

/** RFC 2822 in UTC, as Debian's archives write it. */
function releaseDate(d: Date): string {
  return d.toUTCString().replace(/GMT$/, 'UTC');
}

export function aptFormat(input: RepositoryTarget): RepositoryFormat {
  const codename = input.distroSpec.codename ?? input.distro;
  const suite = `${codename}-${input.channel}`;
  const pool = `pool/${input.channel}/${codename}/`;
  const dists = `apt/dists/${suite}/`;
  const signedKeys = [`${dists}Release`, `${dists}Release.gpg`, `${dists}InRelease`];

  return {
    format: 'apt',
    repoUrlPath: 'apt',
    suite,
    stateKey: `conveyor-state/apt/${suite}.json`,
    listPrefixes: [`apt/${pool}`, dists],
    owns: (key) => key.startsWith(`apt/${pool}`) || (key.startsWith(dists) && key.includes('/by-hash/')),
    poolKey: (ref: ArtifactRef) => `apt/${pool}${ref.name}/${ref.file}`,
    poolContentType: 'application/vnd.debian.binary-package',
    compareVersions: compareDebVersions,
    stale: () => false,

    async ingest(candidates: Candidate[], ctx: IngestContext): Promise<Ingested[]> {
      return mapLimit(candidates, 4, async ({ ref, file, key }) => {
        const control = await readDebControl(file, ref, ctx.signal);
        const h = await hashFile(file);
        const pkg: PublishedPackage = {
          name: ref.name,
          version: ref.version,
          arch: ref.arch,
          artifact: ref,
          key,
          sha256: h.sha256,
          md5: h.md5,
          size: h.size,
          meta: { control, sha1: h.sha1 },
        };
        // A retry after a crash finds the file already uploaded: same key, same bytes.
        const there =
          sameObject(ctx.listing.get(key), h.size, h.md5) &&
          (await headMetadata(ctx.s3, ctx.bucket, key, ctx.signal))?.sha256 === h.sha256;
        return { pkg, upload: there ? undefined : file };
      });
    },

    indexFiles(packages, extra) {
      const architectures = [...new Set([...(extra.architectures ?? []), input.distroSpec.arch])].sort();
      const files: IndexFile[] = [];
      for (const arch of architectures) {
        const stanzas = packages
          .filter((p) => p.arch === arch || p.arch === 'all')
          .map(
            (p) =>
              `${checkedStanza(p.meta.control, `${p.name} ${p.version} ${p.arch} (${p.key})`)}` +
              `Filename: ${p.key.slice('apt/'.length)}\nSize: ${p.size}\n` +
              `MD5sum: ${p.md5}\nSHA1: ${p.meta.sha1}\nSHA256: ${p.sha256}\n`,
          );
        const text = Buffer.from(stanzas.join('\n'));
        // gzip without a timestamp: the same packages give the same bytes, hence the same by-hash name.
        const gz = zlib.gzipSync(text, { level: 9 });
        const dir = `${dists}main/binary-${arch}/`;
        for (const [name, body, type] of [
          ['Packages', text, 'text/plain; charset=utf-8'],
          ['Packages.gz', gz, 'application/gzip'],
        ] as const) {
          files.push({ key: `${dir}by-hash/SHA256/${digest('sha256', body)}`, body, contentType: type, hashed: true });
          files.push({ key: `${dir}${name}`, body, contentType: type, hashed: false });
        }
      }
      return { files, extra: { ...extra, architectures } };
    },

    async signedFiles(files, extra, signer, _generation, now) {
      const listed = files.filter((f) => !f.hashed);
      const lines = (alg: string) =>
        listed.map((f) => ` ${digest(alg, f.body)} ${f.body.length} ${f.key.slice(dists.length)}`);
      const release = Buffer.from(
        [
          'Origin: Conveyor',
          'Label: Conveyor',
          `Suite: ${suite}`,
          `Codename: ${suite}`,
          `Date: ${releaseDate(now)}`,
          `Architectures: ${(extra.architectures ?? []).join(' ')}`,
          'Components: main',
          `Description: Conveyor ${input.channel} packages for ${codename}`,
          'Acquire-By-Hash: yes',
          'MD5Sum:',
          ...lines('md5'),
          'SHA256:',
          ...lines('sha256'),
          '',
        ].join('\n'),
      );
      const detached = await signer.detachSign(release);
      const inline = await signer.clearsign(release);
      return [
        { key: signedKeys[0], body: release, contentType: 'text/plain; charset=utf-8', hashed: false },
        { key: signedKeys[1], body: Buffer.from(detached), contentType: 'application/pgp-signature', hashed: false },
        { key: signedKeys[2], body: Buffer.from(inline), contentType: 'text/plain; charset=utf-8', hashed: false },
      ];
    },
  };
}
