// 5. YUM index. Repository metadata for N generated .rpms: ours (the publisher's YUM index
// writer, activities/repository/yum-format.ts: rpm -qp check per file, createrepo_c over the new
// rpms, fragments kept per package, primary/filelists/other concatenated and gzipped, repomd.xml;
// no gpg on either side) ÷ `createrepo_c --no-database`, interleaved. Signed at package time:
// the same rpms signed with the bench key and their references naming it, as the package stage
// records today's artifacts, with the hashes a publish takes while downloading them; ours then
// also checks every signature (rpm -K in batches, rpm-signature.ts), createrepo_c reads the same
// files. From facts: what a publish of those rpms does since signPackages stores each one's
// createrepo_c fragments and hashes beside it (rpm-index-facts.ts): the facts parsed and checked,
// the index written, no rpm read (the facts are made outside the timed part, as the package stage
// makes them). Incremental: 1 more rpm,
// ours from the kept fragments ÷ `createrepo_c --update --no-database` over the previous repodata.
// Then one more rpm into channels of 1,000 / 6,000 rpms of 200 files each against moto: state read
// and written (bench/state-growth.ts).
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import type { PublishedPackage } from '../activities/repository/repository-state';
import { yumFormat } from '../activities/repository/yum-format';
import { parseRpmIndexFacts, readRpmIndexFacts } from '../activities/repository/rpm-index-facts';
import { hashFile, type FileHashes } from '../activities/repository/s3-objects';
import type { DistroSpec } from '../common/types';
import { openSigner, publicKeyFingerprints, publicKeyOf, type Signer } from '../activities/repository/gpg';
import { benchSigningKey, makeRpms, noSigner, uploadFixtures, writeIndexes, type Fixture } from './fixtures';
import { countRequests, createBuckets, s3Client, startAws } from './servers';
import { stateGrowth } from './state-growth';
import { interleave, median, ms, r2, requireTool, run, timed, type BenchContext, type Benchmark } from './harness';

const SPEC: DistroSpec = { format: 'rpm', arch: 'x86_64' };
const target = { environment: 'staging' as const, channel: 'unstable', distro: 'el9', distroSpec: SPEC };

async function oursIndex(
  fixtures: Fixture[],
  out: string,
  kept: PublishedPackage[] = [],
  signed?: { signer: Signer; hashes: Map<Fixture, FileHashes> },
): Promise<PublishedPackage[]> {
  return writeIndexes(yumFormat(target), fixtures, out, { kept, hashed: true, ...signed });
}

/** Copies of `fixtures` signed with `key` as the package stage signs them, their references naming
 * the signer (what a publish of today's artifacts reads); and a verifying signer for the ingest. */
async function presignedFixtures(ctx: BenchContext, fixtures: Fixture[], key: string) {
  const dir = path.join(ctx.dir, 'signed-rpms');
  fs.mkdirSync(dir, { recursive: true });
  const signing = await openSigner(key);
  try {
    const signed = fixtures.map((f) => {
      const file = path.join(dir, f.ref.file);
      fs.copyFileSync(f.path, file);
      return { ...f, path: file };
    });
    for (let i = 0; i < signed.length; i += 200) await signing.signRpms(signed.slice(i, i + 200).map((f) => f.path));
    const fingerprint = signing.fingerprint;
    const verifying: Signer = { ...noSigner, fingerprint, fingerprints: [fingerprint], publicKey: signing.publicKey };
    const presigned = signed.map((f) => ({ ...f, ref: { ...f.ref, signer: fingerprint } }));
    // What a publish has of each download: its hashes, taken while it was downloaded (untimed here).
    const hashes = new Map(await Promise.all(presigned.map(async (f) => [f, await hashFile(f.path)] as const)));
    return { fixtures: presigned, signed: { signer: verifying, hashes } };
  } finally {
    await signing.close();
  }
}

/** The stored facts of each signed fixture, made as signPackages makes them (readRpmIndexFacts:
 * one createrepo_c over the build's signed rpms), and the reference they name. */
async function factsOf(ctx: BenchContext, signed: Fixture[], hashes: Map<Fixture, FileHashes>) {
  const dir = path.join(ctx.dir, 'facts');
  fs.mkdirSync(dir, { recursive: true });
  const made = await readRpmIndexFacts(
    signed.map((f) => ({ file: f.path, ref: f.ref })),
    dir,
  );
  return new Map(
    signed.map((f, i) => {
      const h = hashes.get(f)!;
      return [f, { bytes: made[i], ref: { ...f.ref, sha256: h.sha256, size: h.size } }] as const;
    }),
  );
}

/** Ours from the facts: each parsed and checked against its reference (as a publish does after
 * fetching it), then the index. */
async function oursFromFacts(
  signed: Fixture[],
  facts: Map<Fixture, { bytes: Buffer; ref: Fixture['ref'] }>,
  signer: Signer,
  out: string,
): Promise<void> {
  const fixtures = signed.map((f) => ({ ...f, ref: facts.get(f)!.ref }));
  const rpmFacts = new Map(
    fixtures.map((f, i) => {
      const parsed = parseRpmIndexFacts(facts.get(signed[i])!.bytes, f.ref);
      if (typeof parsed === 'string') throw new Error(`${f.ref.file}: ${parsed}`);
      return [f, parsed] as const;
    }),
  );
  await writeIndexes(yumFormat(target), fixtures, out, { hashed: true, signer, rpmFacts });
}

const peer = (ctx: BenchContext, dir: string, update = false) =>
  run(ctx, 'createrepo_c', [...(update ? ['--update'] : []), '--no-database', '--quiet', dir]);

/** A repository dir of hard links to the fixtures (createrepo_c writes repodata/ beside them). */
function repoDir(dir: string, fixtures: Fixture[]): string {
  fs.mkdirSync(path.join(dir, 'Packages'), { recursive: true });
  for (const f of fixtures) fs.linkSync(f.path, path.join(dir, 'Packages', f.ref.file));
  return dir;
}

/** A createrepo_c-like primary/filelists/other fragment for synthetic package i, 200 files. */
function syntheticRpm(i: number, signer: string) {
  const name = `grow-pkg${String(i).padStart(5, '0')}`;
  const pkgid = 'a'.repeat(64);
  const version = '<version epoch="0" ver="1.0" rel="1"/>';
  const files = Array.from({ length: 200 }, (_, f) => `    <file>/usr/share/${name}/file-${f}.txt</file>`);
  return {
    name,
    version: '1.0-1',
    arch: 'noarch',
    file: `${name}-1.0-1.noarch.rpm`,
    signer,
    meta: {
      primary: [
        '<package type="rpm">',
        `  <name>${name}</name>`,
        '  <arch>noarch</arch>',
        `  ${version}`,
        `  <checksum type="sha256" pkgid="YES">${pkgid}</checksum>`,
        `  <summary>benchmark package ${name}</summary>`,
        `  <description>Generated by bench/yum-index.ts.</description>`,
        '  <packager></packager>',
        '  <url></url>',
        '  <time file="1700000000" build="1700000000"/>',
        '  <size package="7000" installed="8000" archive="9000"/>',
        `  <location href="Packages/${name}-1.0-1.noarch.rpm"/>`,
        '  <format>',
        '    <rpm:license>MIT</rpm:license>',
        '    <rpm:group>Unspecified</rpm:group>',
        `    <rpm:sourcerpm>${name}-1.0-1.src.rpm</rpm:sourcerpm>`,
        '    <rpm:header-range start="4504" end="6000"/>',
        '    <rpm:provides>',
        `      <rpm:entry name="${name}" flags="EQ" epoch="0" ver="1.0" rel="1"/>`,
        '    </rpm:provides>',
        '  </format>',
        '</package>',
      ].join('\n'),
      filelists: [
        `<package pkgid="${pkgid}" name="${name}" arch="noarch">`,
        `  ${version}`,
        ...files,
        '</package>',
      ].join('\n'),
      other: [`<package pkgid="${pkgid}" name="${name}" arch="noarch">`, `  ${version}`, '</package>'].join('\n'),
    },
  };
}

/** One more rpm into channels of 1,000 (and 6,000) packages of 200 files: state read and written. */
async function yumGrowth(ctx: BenchContext, incoming: Fixture[]) {
  const aws = await startAws(ctx);
  const s3 = s3Client(aws.endpoint);
  const counter = countRequests(s3);
  await createBuckets(s3, 'artifacts', 'staging', 'production');
  await uploadFixtures(s3, 'artifacts', incoming);
  const key = await benchSigningKey(ctx);
  const [fingerprint] = await publicKeyFingerprints(await publicKeyOf(key));
  return stateGrowth({
    ctx,
    s3,
    counter,
    label: 'yum',
    target,
    synthetic: (i) => syntheticRpm(i, fingerprint),
    incoming: [incoming[0], incoming[1]],
    signingKey: key,
    sizes: ctx.quick ? [1000] : [1000, 6000],
  });
}

export const yumIndex: Benchmark = {
  name: 'yum-index',
  describe: 'YUM repodata: ours ÷ createrepo_c; incremental +1 ÷ createrepo_c --update',
  async run(ctx) {
    requireTool('createrepo_c', 'apt-get install -y createrepo-c');
    requireTool('rpmbuild', 'apt-get install -y rpm');
    const n = ctx.quick ? 300 : 2000;
    const rounds = ctx.quick ? 2 : 3;
    const gen = await timed(() => makeRpms(ctx, path.join(ctx.dir, 'rpms'), n + 3, { distro: 'el9' }));
    ctx.log(`generated ${n + 3} rpms in ${ms(gen.ms)} ms`);
    const fixtures = gen.value.slice(0, n);
    const extra = gen.value.slice(n, n + 1);
    const incoming = gen.value.slice(n + 1);
    const out = (side: string, r: number) => path.join(ctx.dir, `${side}-${r}`);
    let kept: PublishedPackage[] = [];
    const full = await interleave(ctx, rounds, {
      prepare: (side, r) =>
        Promise.resolve(void (side === 'peer' ? repoDir(out(side, r), fixtures) : fs.mkdirSync(out(side, r)))),
      ours: async (r) => void (kept = await oursIndex(fixtures, out('ours', r))),
      peer: async (r) => void (await peer(ctx, out('peer', r))),
    });
    const inc = await interleave(ctx, rounds, {
      prepare: (side, r) =>
        Promise.resolve(
          void (side === 'peer'
            ? fs.linkSync(extra[0].path, path.join(out('peer', r), 'Packages', extra[0].ref.file))
            : fs.mkdirSync(out('inc', r))),
        ),
      ours: async (r) => void (await oursIndex(extra, out('inc', r), kept)),
      peer: async (r) => void (await peer(ctx, out('peer', r), true)),
    });
    // Today's artifacts: rpms signed at package time. Ours also checks each signature (rpm -K,
    // in batches); createrepo_c reads the same signed files.
    const signed = await timed(async () => presignedFixtures(ctx, fixtures, await benchSigningKey(ctx)));
    ctx.log(`signed ${n} rpms in ${ms(signed.ms)} ms`);
    const pre = await interleave(ctx, rounds, {
      prepare: (side, r) =>
        Promise.resolve(
          void (side === 'peer'
            ? repoDir(out('peer-signed', r), signed.value.fixtures)
            : fs.mkdirSync(out('ours-signed', r))),
        ),
      ours: async (r) => void (await oursIndex(signed.value.fixtures, out('ours-signed', r), [], signed.value.signed)),
      peer: async (r) => void (await peer(ctx, out('peer-signed', r))),
    });
    // What a publish of them does now: from signPackages' facts, no rpm read.
    const made = await timed(() => factsOf(ctx, signed.value.fixtures, signed.value.signed.hashes));
    const facts = made.value;
    ctx.log(`made the index facts of ${n} signed rpms in ${ms(made.ms)} ms (as the package stage makes them)`);
    const fromFacts = await interleave(ctx, rounds, {
      prepare: (side, r) =>
        Promise.resolve(
          void (side === 'peer'
            ? repoDir(out('peer-facts', r), signed.value.fixtures)
            : fs.mkdirSync(out('ours-facts', r))),
        ),
      ours: (r) => oursFromFacts(signed.value.fixtures, facts, signed.value.signed.signer, out('ours-facts', r)),
      peer: async (r) => void (await peer(ctx, out('peer-facts', r))),
    });
    // The same metadata as reading the rpms gives, but for the file's time (facts: the build time).
    const metadata = (dir: string) => {
      const repodata = path.join(dir, 'yum/el9/unstable/repodata');
      return ['primary', 'filelists', 'other'].map((kind) => {
        const name = fs.readdirSync(repodata).find((f) => f.endsWith(`-${kind}.xml.gz`))!;
        const xml = zlib.gunzipSync(fs.readFileSync(path.join(repodata, name))).toString();
        return xml.replace(/<time file="\d+"/g, '<time file=""');
      });
    };
    if (JSON.stringify(metadata(out('ours-facts', 0))) !== JSON.stringify(metadata(out('ours-signed', 0)))) {
      throw new Error('the metadata from facts differs from the metadata read from the same rpms');
    }
    const growth = await yumGrowth(ctx, incoming);
    const primary = fs.readdirSync(path.join(out('ours', 0), 'yum/el9/unstable/repodata')).length;
    return {
      rows: [
        {
          measure: `repodata for ${n} rpms: ours (median of ${rounds})`,
          value: ms(median(full.ours)),
          unit: 'ms',
          note: `${primary} files in repodata/`,
        },
        {
          measure: `repodata for ${n} rpms: createrepo_c`,
          value: ms(median(full.peer)),
          unit: 'ms',
          note: '--no-database',
        },
        { measure: 'full: ours ÷ createrepo_c', value: r2(full.ratio), unit: '×', note: 'target ≤ 1.2' },
        {
          measure: `signed at package time, ${n} rpms: ours (median of ${rounds})`,
          value: ms(median(pre.ours)),
          unit: 'ms',
          note: "as a publish of today's artifacts: each signature checked too (rpm -K in batches)",
        },
        {
          measure: `signed at package time, ${n} rpms: createrepo_c`,
          value: ms(median(pre.peer)),
          unit: 'ms',
          note: '--no-database, the same signed files',
        },
        { measure: 'signed: ours ÷ createrepo_c', value: r2(pre.ratio), unit: '×', note: 'target ≤ 1.2' },
        {
          measure: `from signPackages' facts, ${n} rpms: ours (median of ${rounds})`,
          value: ms(median(fromFacts.ours)),
          unit: 'ms',
          note: 'what a publish of them does: facts parsed and checked, no rpm read',
        },
        {
          measure: `from signPackages' facts, ${n} rpms: createrepo_c`,
          value: ms(median(fromFacts.peer)),
          unit: 'ms',
          note: '--no-database over the signed files (it reads them)',
        },
        {
          measure: `making those facts at package time, ${n} rpms`,
          value: ms(made.ms),
          unit: 'ms',
          note: 'once per build, in signPackages (one createrepo_c over its signed rpms), untimed above',
        },
        {
          measure: 'from facts: ours ÷ createrepo_c',
          value: r2(fromFacts.ratio),
          unit: '×',
          note: 'not like for like: the facts were made at package time',
        },
        {
          measure: 'incremental +1 rpm: ours',
          value: ms(median(inc.ours)),
          unit: 'ms',
          note: 'fragments of the N kept, as in the state manifest',
        },
        {
          measure: 'incremental +1 rpm: createrepo_c --update',
          value: ms(median(inc.peer)),
          unit: 'ms',
          note: '--update --no-database',
        },
        { measure: 'incremental: ours ÷ createrepo_c --update', value: r2(inc.ratio), unit: '×', note: 'target ≤ 1.2' },
        ...growth.rows,
      ],
      figures: {
        rpms: n,
        ours_ms: ms(median(full.ours)),
        createrepo_ms: ms(median(full.peer)),
        ratio: r2(full.ratio),
        signed_ours_ms: ms(median(pre.ours)),
        signed_createrepo_ms: ms(median(pre.peer)),
        signed_ratio: r2(pre.ratio),
        facts_ms: ms(median(fromFacts.ours)),
        facts_createrepo_ms: ms(median(fromFacts.peer)),
        facts_ratio: r2(fromFacts.ratio),
        facts_made_ms: ms(made.ms),
        inc_ours_ms: ms(median(inc.ours)),
        inc_createrepo_ms: ms(median(inc.peer)),
        inc_ratio: r2(inc.ratio),
        ...growth.figures,
      },
      notes: [
        'ours = rpm header check per file (in-process, rpm -qp only when it does not match) + createrepo_c over the new rpms + per-package fragments concatenated (gzip -9) + repomd.xml, rpm signing stubbed out; ' +
          'peer = createrepo_c --no-database over the same files',
        'signed at package time: the references name the signer, as the package stage records them since sign-at-package; ours adds the signature check of every rpm against the public key (rpm -Kv, a few hundred files per process), which a publish of such rpms runs',
      ],
    };
  },
};
