// Incremental publish into large channels (issue 14, parts 4 and 5): what one more package costs
// in state read and written, at 1,000 / 5,000 / 20,000 packages. Ingesting thousands of real
// packages would take most of the benchmark's time and measure ingest, not state, so each channel
// is made synthetically at its size: a small pool object per package (the publisher checks each
// one's size and MD5 in the listing, as for real files) and the state as the publisher stores it
// (head and shards, state-shards.ts), written through the bench worker's shard cache as its own
// earlier publishes would have. Then one real package is published with the real activity against
// moto, counted per request; then another from a worker with an empty cache (a new worker reads
// every shard once). "Before" is the single-object state of the same packages, which every
// publish used to read and write whole.
import crypto from 'node:crypto';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import {
  aptFormat,
  createRepositoryActivities,
  createRepoStore,
  yumFormat,
  type PublishPackagesInput,
  type RepositoryTarget,
} from '../activities/repository';
import type { RepositoryFormat } from '../activities/repository/publish-types';
import { emptyState, type PublishedPackage } from '../activities/repository/repository-state';
import { mapLimit } from '../activities/repository/s3-objects';
import { headOf, planLayout, writeLayout } from '../activities/repository/state-shards';
import type { Fixture } from './fixtures';
import { mb, ms, timed, type BenchContext, type Row } from './harness';
import type { S3Counter } from './servers';

const md5 = (b: Buffer) => crypto.createHash('md5').update(b).digest('hex');
const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

export interface GrowthSetup {
  ctx: BenchContext;
  s3: S3Client;
  counter: S3Counter;
  /** Where to publish; each size gets its own channel. */
  target: Omit<RepositoryTarget, 'channel'>;
  /** Package i of a synthetic channel: name, version, arch, file and index data (`meta`). */
  synthetic: (i: number) => Pick<PublishedPackage, 'name' | 'version' | 'arch' | 'meta' | 'signer'> & { file: string };
  /** Two real packages (uploaded to the artifacts bucket): the warm and the cold publish. */
  incoming: [Fixture, Fixture];
  signingKey: string;
  sizes: number[];
  label: string;
}

function stateCalls(counter: S3Counter) {
  const state = counter.calls.filter((c) => c.key.startsWith('conveyor-state/'));
  const gets = state.filter((c) => c.command === 'GetObject');
  const puts = state.filter((c) => c.command === 'PutObject');
  const allPuts = counter.calls.filter((c) => c.command === 'PutObject' || c.command === 'CompleteMultipartUpload');
  const lists = counter.calls.filter((c) => c.command === 'ListObjectsV2').length;
  const sum = (xs: { bytes: number }[]) => xs.reduce((n, c) => n + c.bytes, 0);
  return {
    readObjects: gets.length,
    readBytes: sum(gets),
    writtenObjects: puts.length,
    writtenBytes: sum(puts),
    objects: allPuts.length,
    lists,
    bytesRead: counter.bytesRead,
    bytesWritten: counter.bytesWritten,
  };
}

const kb = (bytes: number) => Math.round(bytes / 100) / 10;

function formatOf(target: RepositoryTarget): RepositoryFormat {
  return target.distroSpec.format === 'deb' ? aptFormat(target) : yumFormat(target);
}

function inputOf(target: RepositoryTarget, artifacts: Fixture[], names: string[]): PublishPackagesInput {
  return {
    ...target,
    artifacts: artifacts.map((f) => f.ref),
    keepBuilds: 10,
    repository: 'bench/state',
    packages: names,
  };
}

export async function stateGrowth(g: GrowthSetup): Promise<{ rows: Row[]; figures: Record<string, number> }> {
  const { ctx, s3, counter } = g;
  const rows: Row[] = [];
  const figures: Record<string, number> = {};
  for (const n of g.sizes) {
    const channel = `grow${n}`;
    const target = { ...g.target, channel };
    const fmt = formatOf(target);
    const store = createRepoStore(s3, 'staging');
    const workDir = path.join(ctx.dir, `work-${channel}`);
    // The channel at size n: tiny pool objects and the stored state.
    const made = await timed(async () => {
      const packages: PublishedPackage[] = await mapLimit(
        Array.from({ length: n }, (_, i) => i),
        32,
        async (i) => {
          const s = g.synthetic(i);
          const body = Buffer.from(`${s.name} ${s.version}\n`);
          const ref = {
            key: `packages/bench/${sha256(body)}/${s.file}`,
            sha256: sha256(body),
            size: body.length,
            name: s.name,
            version: s.version,
            arch: s.arch,
            format: fmt.format === 'apt' ? ('deb' as const) : ('rpm' as const),
            file: s.file,
            distro: target.distro,
          };
          const key = fmt.poolKey(ref);
          await store.put(key, body, { contentType: fmt.poolContentType, immutable: true });
          return { ...s, artifact: ref, key, sha256: ref.sha256, md5: md5(body), size: body.length };
        },
      );
      packages.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      const owners = Object.fromEntries(packages.map((p) => [p.name, 'bench/state']));
      const state = {
        ...emptyState(fmt.format),
        generation: 1,
        packages,
        owners,
        publishedAt: new Date().toISOString(),
      };
      const planned = planLayout(fmt.stateKey, packages, owners, undefined);
      await writeLayout(store, planned, { cacheDir: path.join(workDir, 'state-cache') });
      const head = headOf(state, planned.layout);
      await store.put(fmt.stateKey, Buffer.from(JSON.stringify(head, null, 1)), {
        contentType: 'application/json',
        immutable: false,
      });
      return { names: packages.map((p) => p.name), single: Buffer.byteLength(JSON.stringify(state, null, 1)) };
    });
    ctx.log(`${g.label}: channel of ${n} made in ${ms(made.ms)} ms`);
    const names = [...made.value.names, ...g.incoming.map((f) => f.ref.name)];
    const acts = (dir: string) =>
      createRepositoryActivities({
        s3,
        artifactsBucket: 'artifacts',
        buckets: { staging: 'staging', production: 'production' },
        signingKey: () => g.signingKey,
        workDir: dir,
      });
    counter.reset();
    const warm = await timed(() => acts(workDir).publishPackages(inputOf(target, [g.incoming[0]], names)));
    const w = stateCalls(counter);
    counter.reset();
    const cold = await timed(() =>
      acts(path.join(ctx.dir, `cold-${channel}`)).publishPackages(inputOf(target, [g.incoming[1]], names)),
    );
    const c = stateCalls(counter);
    const count = n.toLocaleString('en-US');
    rows.push(
      {
        measure: `${g.label} +1 into ${count}: state read`,
        value: kb(w.readBytes),
        unit: 'KB',
        note: `${w.readObjects} object(s); before: ${mb(made.value.single)} MB (the whole state)`,
      },
      {
        measure: `${g.label} +1 into ${count}: state written`,
        value: kb(w.writtenBytes),
        unit: 'KB',
        note: `${w.writtenObjects} objects (shard, directory, head, snapshot); before: ${mb(made.value.single)} MB`,
      },
      {
        measure: `${g.label} +1 into ${count}: objects written`,
        value: w.objects,
        unit: 'objects',
        note: `${ms(warm.ms)} ms; ${w.lists} list pages; all bytes read ${mb(w.bytesRead)} MB, written ${mb(w.bytesWritten)} MB (index files are O(n))`,
      },
      {
        measure: `${g.label} +1 into ${count}, new worker: state read`,
        value: mb(c.readBytes),
        unit: 'MB',
        note: `${c.readObjects} objects (every shard once); ${ms(cold.ms)} ms`,
      },
    );
    figures[`state_read_KB_${n}`] = kb(w.readBytes);
    figures[`state_written_KB_${n}`] = kb(w.writtenBytes);
    figures[`objects_${n}`] = w.objects;
    figures[`single_state_MB_${n}`] = mb(made.value.single);
  }
  return { rows, figures };
}
