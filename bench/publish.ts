// 6. Publish. S MB of .debs to the local S3 endpoint (moto): ours (publishPackages into a fresh
// channel: read each artifact's index facts, copy it into the pool server-side, index, sign) ÷
// `aws s3 sync` of the same files to a fresh prefix of the same endpoint, interleaved. The facts
// are what the package stage stores beside each .deb (deb-index-facts.ts), made here outside the
// timed part like the artifacts' upload. Then the same with references that name no facts (runs
// recorded before: each artifact downloaded, verified and read), and the first publish again,
// unchanged, ÷ the first (and `aws s3 sync` again for reference).
import path from 'node:path';
import { createRepositoryActivities } from '../activities/repository';
import { benchSigningKey, makeDebs, storeIndexFacts, uploadFixtures } from './fixtures';
import { interleave, mb, median, ms, r2, requireTool, run, timed, type Benchmark } from './harness';
import { createBuckets, s3Client, startAws } from './servers';

export const publish: Benchmark = {
  name: 'publish',
  describe: 'publish S MB of packages to local S3: ours ÷ aws s3 sync; unchanged re-publish ÷ first',
  async run(ctx) {
    requireTool('aws', 'apt-get install -y awscli (or pip install awscli)');
    const [count, each] = ctx.quick ? [10, 5e6] : [50, 10e6];
    const rounds = 2;
    const pool = path.join(ctx.dir, 'pool');
    const fixtures = makeDebs(pool, count, { distro: 'bookworm', payloadBytes: each, prefix: 'big' });
    const total = fixtures.reduce((a, f) => a + f.ref.size, 0);
    ctx.log(`generated ${count} .debs, ${mb(total)} MB`);
    const aws = await startAws(ctx);
    const s3 = s3Client(aws.endpoint);
    await createBuckets(s3, 'artifacts', 'staging', 'production', 'peer');
    await uploadFixtures(s3, 'artifacts', fixtures);
    await storeIndexFacts(s3, 'artifacts', fixtures);
    const key = await benchSigningKey(ctx);
    const repos = createRepositoryActivities({
      s3,
      artifactsBucket: 'artifacts',
      buckets: { staging: 'staging', production: 'production' },
      signingKey: () => key,
      workDir: path.join(ctx.dir, 'work'),
    });
    const publishTo = (channel: string, facts = true) =>
      repos.publishPackages({
        environment: 'staging',
        channel,
        distro: 'bookworm',
        distroSpec: { format: 'deb', codename: 'bookworm', arch: 'amd64' },
        artifacts: fixtures.map((f) => (facts ? f.ref : { ...f.ref, aptIndex: undefined })),
        keepBuilds: 10,
        repository: 'bench/big',
        packages: fixtures.map((f) => f.ref.name),
      });
    const env = {
      ...process.env,
      AWS_ACCESS_KEY_ID: 'bench',
      AWS_SECRET_ACCESS_KEY: 'bench',
      AWS_DEFAULT_REGION: 'us-east-1',
    };
    const sync = (prefix: string) =>
      run(
        ctx,
        'aws',
        [
          's3',
          'sync',
          pool,
          `s3://peer/${prefix}/`,
          '--endpoint-url',
          aws.endpoint,
          '--no-progress',
          '--only-show-errors',
        ],
        { env },
      );
    const first = await interleave(ctx, rounds, {
      ours: (r) => publishTo(`round${r}`).then(() => undefined),
      peer: (r) => sync(`round${r}`).then(() => undefined),
    });
    const downloading = await interleave(ctx, rounds, {
      ours: (r) => publishTo(`download${r}`, false).then(() => undefined),
      peer: (r) => sync(`download${r}`).then(() => undefined),
    });
    const again = await timed(() => publishTo('round0'));
    const peerAgain = await timed(() => sync('round0'));
    const changed = again.value.changed;
    return {
      rows: [
        {
          measure: `first publish, ${count} debs, ${mb(total)} MB: ours (median of ${rounds})`,
          value: ms(median(first.ours)),
          unit: 'ms',
          note: `${r2(total / 1e6 / (median(first.ours) / 1000))} MB/s`,
        },
        {
          measure: 'first publish: aws s3 sync',
          value: ms(median(first.peer)),
          unit: 'ms',
          note: `${r2(total / 1e6 / (median(first.peer) / 1000))} MB/s`,
        },
        { measure: 'first: ours ÷ aws s3 sync', value: r2(first.ratio), unit: '×', note: 'target ≤ 1.0' },
        {
          measure: 'first, references without index facts: ours (median)',
          value: ms(median(downloading.ours)),
          unit: 'ms',
          note: 'each artifact downloaded, verified and read, as for runs recorded before',
        },
        {
          measure: 'without facts: ours ÷ aws s3 sync',
          value: r2(downloading.ratio),
          unit: '×',
          note: `aws s3 sync ${ms(median(downloading.peer))} ms in these rounds`,
        },
        { measure: 'unchanged re-publish: ours', value: ms(again.ms), unit: 'ms', note: `changed=${changed}` },
        {
          measure: 'unchanged: ours ÷ ours first',
          value: r2(again.ms / median(first.ours)),
          unit: '×',
          note: 'target ≤ 0.2',
        },
        {
          measure: 'unchanged: aws s3 sync again',
          value: ms(peerAgain.ms),
          unit: 'ms',
          note: `${r2(peerAgain.ms / median(first.peer))} of its first`,
        },
      ],
      figures: {
        MB: mb(total),
        ours_ms: ms(median(first.ours)),
        sync_ms: ms(median(first.peer)),
        ratio: r2(first.ratio),
        nofacts_ms: ms(median(downloading.ours)),
        nofacts_ratio: r2(downloading.ratio),
        republish_ms: ms(again.ms),
        republish_fraction: r2(again.ms / median(first.ours)),
      },
      notes: [
        "ours reads each artifact's index facts and copies it into the pool server-side (S3 checks its SHA-256), then indexes and signs; aws s3 sync only uploads",
        'without facts, ours also downloads each artifact from the artifacts bucket (same endpoint) and reads it',
      ],
    };
  },
};
