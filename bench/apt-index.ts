// 4. APT index. Packages/Release for N generated .debs: ours (the publisher's APT index writer,
// activities/repository/apt-format.ts: read each control file, hash, Packages + Packages.gz,
// Release; no gpg on either side) ÷ `apt-ftparchive packages` + gzip -9 + `apt-ftparchive release`,
// interleaved. Then the real incremental publish against moto: add 1 package to the published N;
// time, bytes read and S3 requests (an instrumented S3 client). Then one more package into
// channels of 1,000 / 5,000 / 20,000 packages: state read and written (bench/state-growth.ts).
import fs from 'node:fs';
import path from 'node:path';
import { createRepositoryActivities } from '../activities/repository';
import { aptFormat } from '../activities/repository/apt-format';
import { formatStanza, parseControl } from '../activities/repository/deb-control';
import type { DistroSpec } from '../common/types';
import { benchSigningKey, indexFactsOf, makeDebs, uploadFixtures, writeIndexes, type Fixture } from './fixtures';
import type { DebIndexFacts } from '../activities/repository/deb-index-facts';
import { interleave, mb, median, ms, r2, requireTool, run, timed, type Benchmark, type Row } from './harness';
import { countRequests, createBuckets, s3Client, startAws } from './servers';
import { stateGrowth } from './state-growth';

const DISTRO = 'bookworm';
const SPEC: DistroSpec = { format: 'deb', codename: 'bookworm', arch: 'amd64' };
const target = { environment: 'staging' as const, channel: 'unstable', distro: DISTRO, distroSpec: SPEC };

/** `1 pool, 2 by-hash, …`: what kinds of objects a publish wrote. */
export function kinds(keys: string[]): string {
  const kind = (k: string) =>
    k.startsWith('conveyor-state/')
      ? 'state'
      : /\/(pool|Packages)\//.test(k)
        ? 'pool'
        : k.includes('/by-hash/') || /repodata\/[0-9a-f]{64}-/.test(k)
          ? 'hashed index'
          : /(Release|InRelease|repomd)/.test(k)
            ? 'signed index'
            : k.startsWith('keys/')
              ? 'key'
              : 'index';
  const counts = new Map<string, number>();
  for (const k of keys) counts.set(kind(k), (counts.get(kind(k)) ?? 0) + 1);
  return [...counts].map(([k, c]) => `${c} ${k}`).join(', ');
}

/** Ours: the index writer over local files, as the publisher runs it after downloading. */
async function oursIndex(fixtures: Fixture[], out: string, facts?: Map<Fixture, DebIndexFacts>): Promise<void> {
  await writeIndexes(aptFormat(target), fixtures, out, { facts });
}

async function peerIndex(ctx: Parameters<Benchmark['run']>[0], pool: string, out: string): Promise<void> {
  const dir = path.join(out, 'dists/bookworm-unstable/main/binary-amd64');
  fs.mkdirSync(dir, { recursive: true });
  const packages = path.join(dir, 'Packages');
  await run(ctx, 'apt-ftparchive', ['packages', path.basename(pool)], {
    cwd: path.dirname(pool),
    stdoutFile: packages,
  });
  await run(ctx, 'gzip', ['-9', '-k', '-n', packages]);
  const dists = path.join(out, 'dists/bookworm-unstable');
  await run(ctx, 'apt-ftparchive', ['release', dists], { stdoutFile: path.join(out, 'Release') });
  fs.renameSync(path.join(out, 'Release'), path.join(dists, 'Release'));
}

export const aptIndex: Benchmark = {
  name: 'apt-index',
  describe: 'APT Packages/Release: ours ÷ apt-ftparchive; incremental add of 1 package; state I/O at 1k/5k/20k',
  async run(ctx) {
    requireTool('apt-ftparchive', 'apt-get install -y apt-utils');
    const n = ctx.quick ? 300 : 2000;
    const rounds = ctx.quick ? 2 : 4;
    const pool = path.join(ctx.dir, 'pool');
    const t = await timed(() => Promise.resolve(makeDebs(pool, n, { distro: DISTRO, compression: 'xz' })));
    const fixtures = t.value;
    ctx.log(`generated ${n} .debs in ${ms(t.ms)} ms`);
    const outDir = (side: string, r: number) => path.join(ctx.dir, `${side}-${r}`);
    const index = await interleave(ctx, rounds, {
      prepare: (side, r) => Promise.resolve(void fs.mkdirSync(outDir(side, r), { recursive: true })),
      ours: (r) => oursIndex(fixtures, outDir('ours', r)),
      peer: (r) => peerIndex(ctx, pool, outDir('peer', r)),
    });
    // What a publish does now: the same index from the package stage's facts (made outside the
    // timed part), no .deb read. Not like for like with apt-ftparchive, which reads the .debs.
    const facts = await indexFactsOf(fixtures);
    const fromFacts = await interleave(ctx, rounds, {
      prepare: (side, r) => Promise.resolve(void fs.mkdirSync(outDir(`facts-${side}`, r), { recursive: true })),
      ours: (r) => oursIndex(fixtures, outDir('facts-ours', r), facts),
      peer: (r) => peerIndex(ctx, pool, outDir('facts-peer', r)),
    });
    const oursPackages = fs.readFileSync(
      path.join(outDir('ours', 0), 'apt/dists/bookworm-unstable/main/binary-amd64/Packages'),
      'utf8',
    );
    const stanzas = oursPackages.split('\n\n').length;

    // Incremental: the real publish against moto.
    const aws = await startAws(ctx);
    const s3 = s3Client(aws.endpoint);
    const counter = countRequests(s3);
    await createBuckets(s3, 'artifacts', 'staging', 'production');
    await uploadFixtures(s3, 'artifacts', fixtures);
    const extra = makeDebs(path.join(ctx.dir, 'extra'), 1, { distro: DISTRO, from: n, compression: 'xz' });
    await uploadFixtures(s3, 'artifacts', extra);
    const key = await benchSigningKey(ctx);
    const names = [...fixtures, ...extra].map((f) => f.ref.name);
    const repos = createRepositoryActivities({
      s3,
      artifactsBucket: 'artifacts',
      buckets: { staging: 'staging', production: 'production' },
      signingKey: () => key,
      workDir: path.join(ctx.dir, 'work'),
    });
    const publish = (artifacts: Fixture[]) =>
      repos.publishPackages({
        ...target,
        artifacts: artifacts.map((f) => f.ref),
        keepBuilds: 10,
        repository: 'bench/apt',
        packages: names,
      });
    counter.reset();
    const firstRun = await timed(() => publish(fixtures));
    const first = {
      ms: firstRun.ms,
      requests: counter.summary(),
      read: counter.bytesRead,
      written: counter.bytesWritten,
    };
    ctx.log(`first publish of ${n}: ${ms(firstRun.ms)} ms`);
    counter.reset();
    const inc = await timed(() => publish(extra));
    const incReq = counter.summary();
    const incRead = counter.bytesRead;
    const incWritten = counter.bytesWritten;
    const puts = (incReq.PutObject ?? 0) + (incReq.CompleteMultipartUpload ?? 0);
    const uploaded = (inc.value as { uploaded: string[] }).uploaded;
    const stateKey = uploaded.find((k) => /^conveyor-state\/apt\/[^/]+\.json$/.test(k));
    counter.reset();
    const again = await timed(() => publish(extra));
    const againReq = counter.summary();
    ctx.log(`incremental: ${ms(inc.ms)} ms; unchanged: ${ms(again.ms)} ms`);

    // State growth: one more package into channels of 1,000 / 5,000 / 20,000 (bench/state-growth.ts).
    const control = formatStanza(
      parseControl(
        'Package: bench-pkg00000\nVersion: 1.0-1\nArchitecture: all\nMaintainer: Conveyor Bench <bench@example.com>\n' +
          'Section: misc\nPriority: optional\nDescription: benchmark package bench-pkg00000\n Generated by bench/fixtures.ts.\n',
      ),
    );
    const incoming = makeDebs(path.join(ctx.dir, 'incoming'), 2, { distro: DISTRO, prefix: 'zz' });
    await uploadFixtures(s3, 'artifacts', incoming);
    const growth = await stateGrowth({
      ctx,
      s3,
      counter,
      label: 'apt',
      target,
      synthetic: (i) => {
        const name = `grow-pkg${String(i).padStart(5, '0')}`;
        return {
          name,
          version: '1.0-1',
          arch: 'all',
          file: `${name}_1.0-1_all.deb`,
          meta: {
            control: control.replace(/bench-pkg00000/g, name),
            sha1: 'd'.repeat(40),
            sha512: 'e'.repeat(128),
            contents: `usr/share/${name}/VERSION`,
          },
        };
      },
      incoming: [incoming[0], incoming[1]],
      signingKey: key,
      sizes: ctx.quick ? [1000] : [1000, 5000, 20000],
    });

    const rows: Row[] = [
      {
        measure: `index ${n} debs: ours (median of ${rounds})`,
        value: ms(median(index.ours)),
        unit: 'ms',
        note: `${stanzas} stanzas`,
      },
      {
        measure: `index ${n} debs: apt-ftparchive (median of ${rounds})`,
        value: ms(median(index.peer)),
        unit: 'ms',
        note: 'packages + gzip -9 + release',
      },
      { measure: 'index: ours ÷ apt-ftparchive', value: r2(index.ratio), unit: '×', note: 'target ≤ 1.0' },
      {
        measure: "index from the package stage's facts (what a publish does): ours (median)",
        value: ms(median(fromFacts.ours)),
        unit: 'ms',
        note: `no .deb read; apt-ftparchive ${ms(median(fromFacts.peer))} ms in these rounds`,
      },
      {
        measure: 'from facts: ours ÷ apt-ftparchive',
        value: r2(fromFacts.ratio),
        unit: '×',
        note: 'not like for like: apt-ftparchive reads the .debs',
      },
      {
        measure: `first publish of ${n} to moto (signed)`,
        value: ms(first.ms),
        unit: 'ms',
        note: JSON.stringify(first.requests),
      },
      { measure: 'incremental +1 package: time', value: ms(inc.ms), unit: 'ms', note: '' },
      {
        measure: 'incremental: bytes read',
        value: Math.round(incRead / 100) / 10,
        unit: 'KB',
        note: 'GetObject bodies (state head, key)',
      },
      { measure: 'incremental: bytes written', value: mb(incWritten), unit: 'MB', note: '' },
      { measure: 'incremental: objects written', value: puts, unit: 'objects', note: kinds(uploaded) },
      {
        measure: 'incremental: requests',
        value: Object.values(incReq).reduce((a, b) => a + b, 0),
        unit: 'requests',
        note: JSON.stringify(incReq),
      },
      {
        measure: 'same package again (no change)',
        value: ms(again.ms),
        unit: 'ms',
        note: JSON.stringify(againReq),
      },
      ...growth.rows,
    ];
    return {
      rows,
      figures: {
        debs: n,
        ours_ms: ms(median(index.ours)),
        aptftparchive_ms: ms(median(index.peer)),
        ratio: r2(index.ratio),
        facts_ms: ms(median(fromFacts.ours)),
        facts_ratio: r2(fromFacts.ratio),
        inc_ms: ms(inc.ms),
        inc_read_KB: Math.round(incRead / 100) / 10,
        inc_objects: puts,
        state_key: stateKey ?? '-',
        ...growth.figures,
      },
      notes: [
        'debs with xz members, as dpkg-deb builds them; ours = ingest (deb-archive.ts: ar/tar in-process, one xz ' +
          'process for the batch; control checks; hashes) + Packages, .gz (gzip -9), .xz (xz -1), Contents(.gz) + Release, ' +
          'no gpg; peer = apt-ftparchive packages + gzip -9 + apt-ftparchive release (no cache db), same pool',
      ],
    };
  },
};
