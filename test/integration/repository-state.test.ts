// The repository state against the real local S3 endpoint (moto), read back by real apt-get and
// dnf: a publish of one package into a large channel reads and writes state in proportion to the
// change (counted by an S3 client middleware on the publisher's own client), a state written by
// the previous code (one object, run from git) is migrated on the next publish, and generation
// snapshots are pruned with the retention window.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import {
  createRepositoryActivities,
  createRepoStore,
  listGenerations,
  readSnapshot,
  yumFormat,
  aptFormat,
  type PublishPackagesInput,
} from '../../activities/repository';
import { runProcess } from '../../activities/exec/process';
import { createAwsClients, LOCAL_CREDENTIALS } from '../../activities/storage/s3';
import { loadState } from '../../activities/repository/state-shards';
import type { ArtifactRef } from '../../common/types';
import { parseS3Url } from '../../config/conveyor';
import { makeDebs, uploadFixtures } from '../../bench/fixtures';
import { buildTestDeb, buildTestRpm, testSigningKey } from '../helpers/packages';
import { aptClient, dnfClient } from '../helpers/readers';
import { awsFor, tempDir, testConfig, testEnv, uid } from '../helpers/stack';

/** The last commit whose publisher kept the state as one object (schema 1). */
const SINGLE_OBJECT_COMMIT = 'ac28ef8';
const ROOT = path.resolve(__dirname, '../..');

interface Call {
  command: string;
  bucket: string;
  key: string;
  /** Body bytes: read for GetObject, written for PutObject. */
  bytes: number;
}

/** Records every request the client sends, with its bucket, key and body size. */
function recordCalls(s3: S3Client): Call[] {
  const calls: Call[] = [];
  s3.middlewareStack.add(
    (next, context) => async (args) => {
      const input = args.input as { Bucket?: string; Key?: string };
      const out = await next(args);
      const command = (context.commandName ?? '?').replace(/Command$/, '');
      const req = args.request as { headers?: Record<string, string> };
      const res = out.response as { headers?: Record<string, string> };
      const length = (h?: Record<string, string>) => Number(h?.['content-length'] ?? 0);
      calls.push({
        command,
        bucket: input.Bucket ?? '',
        key: input.Key ?? '',
        bytes: command === 'GetObject' ? length(res.headers) : command === 'PutObject' ? length(req.headers) : 0,
      });
      return out;
    },
    { step: 'finalizeRequest', name: 'stateTestRecorder' },
  );
  return calls;
}

const sum = (calls: Call[]) => calls.reduce((n, c) => n + c.bytes, 0);

describe('repository state: sharded, migrated, pruned', () => {
  let s3: S3Client;
  let calls: Call[];
  let bucket: string;
  let artifactsBucket: string;
  let production: string;
  let http: string;
  let signingKey: string;
  let clock = Date.now();

  const activities = (workDir = tempDir('state-work'), keepGenerationsHours?: number) =>
    createRepositoryActivities({
      s3,
      artifactsBucket,
      buckets: { staging: bucket, production },
      signingKey: () => signingKey,
      workDir,
      keepGenerationsHours,
      now: () => new Date(clock),
    });

  const deb = (channel: string, artifacts: ArtifactRef[], keepBuilds = 5): PublishPackagesInput => ({
    environment: 'staging',
    channel,
    distro: 'bookworm',
    distroSpec: { format: 'deb', codename: 'bookworm', arch: 'amd64' },
    artifacts,
    keepBuilds,
    repository: 'acme/state',
    packages: [...new Set(artifacts.map((a) => a.name))],
  });
  const aptTarget = (channel: string) =>
    aptFormat({
      environment: 'staging',
      channel,
      distro: 'bookworm',
      distroSpec: { format: 'deb', codename: 'bookworm', arch: 'amd64' },
    });

  /** Requests to the repository bucket during `fn`. */
  async function during(fn: () => Promise<unknown>): Promise<Call[]> {
    const from = calls.length;
    await fn();
    return calls.slice(from).filter((c) => c.bucket === bucket);
  }

  beforeAll(async () => {
    const config = testConfig([]);
    await awsFor(config);
    s3 = createAwsClients(config, {}).s3;
    calls = recordCalls(s3);
    artifactsBucket = parseS3Url(config.storage.artifacts).bucket;
    bucket = parseS3Url(config.storage.staging).bucket;
    production = parseS3Url(config.storage.production).bucket;
    http = `${testEnv().aws}/${bucket}`;
    signingKey = await testSigningKey();
  });

  beforeEach(() => {
    clock = Date.now() - 72 * 3_600_000;
  });

  it('reads and writes state in proportion to the change when one package joins 300', async () => {
    const channel = `big${uid()}`;
    const fixtures = makeDebs(tempDir('big-debs'), 301, { distro: 'bookworm', prefix: `s${uid()}` });
    await uploadFixtures(s3, artifactsBucket, fixtures);
    const [extra, ...rest] = fixtures;
    const acts = activities();
    await acts.publishPackages(
      deb(
        channel,
        rest.map((f) => f.ref),
      ),
    );
    const fmt = aptTarget(channel);
    const store = createRepoStore(s3, bucket);
    const whole = Buffer.byteLength(JSON.stringify((await loadState(store, fmt))!));

    clock += 60_000;
    const inc = await during(() => acts.publishPackages(deb(channel, [extra.ref])));
    const state = (c: Call) => c.key.startsWith('conveyor-state/');
    const reads = inc.filter((c) => c.command === 'GetObject' && state(c));
    const writes = inc.filter((c) => c.command === 'PutObject' && state(c));
    // The head only: every shard is in this worker's cache.
    expect(reads.map((c) => c.key)).toEqual([fmt.stateKey]);
    // The old single-object state was read and rewritten whole here: `whole` bytes each way.
    expect(sum(reads) * 4).toBeLessThan(whole);
    expect(sum(writes) * 4).toBeLessThan(whole);
    // The new name's shard, its directory, the head, the generation's snapshot.
    expect(writes.map((c) => c.key.replace(/[0-9a-f]{64}/, 'H')).sort()).toEqual(
      [
        `${fmt.stateKey}`,
        `conveyor-state/apt/bookworm-${channel}.generations/00000002.json`,
        `conveyor-state/apt/bookworm-${channel}.shards/d/H.json`,
        `conveyor-state/apt/bookworm-${channel}.shards/n/H.json`,
      ].sort(),
    );
    // Everything else written: the pool file (a server-side copy of the artifact), the changed
    // index files, the signed index.
    const others = inc.filter((c) => (c.command === 'PutObject' || c.command === 'CopyObject') && !state(c));
    expect(others.filter((c) => c.key.includes('/pool/')).map((c) => c.key)).toEqual([
      `apt/pool/${channel}/bookworm/${extra.ref.name}/${extra.ref.file}`,
    ]);
    expect(others.length).toBeLessThanOrEqual(1 + 15 + 3);

    // A worker that has never seen the channel reads every shard once, then only what changed.
    const cold = activities();
    const more = makeDebs(tempDir('more-debs'), 2, { distro: 'bookworm', prefix: `m${uid()}` });
    await uploadFixtures(s3, artifactsBucket, more);
    clock += 60_000;
    const first = await during(() => cold.publishPackages(deb(channel, [more[0].ref])));
    const shardReads = (cs: Call[]) => cs.filter((c) => c.command === 'GetObject' && c.key.includes('.shards/'));
    expect(shardReads(first).length).toBeGreaterThanOrEqual(301);
    clock += 60_000;
    // The first worker has not seen the cold one's shard and directory: two objects.
    const back = await during(() => acts.publishPackages(deb(channel, [more[1].ref])));
    expect(shardReads(back).length).toBe(2);

    // Clients read the result.
    const apt = await aptClient(tempDir('big-apt'), `${http}/apt`, `bookworm-${channel}`, `${http}/keys/conveyor.asc`);
    expect((await apt.update()).exitCode).toBe(0);
    for (const f of [extra, rest[0], rest[299], more[1]]) {
      expect((await apt.download(`${f.ref.name}=${f.ref.version}`)).exitCode).toBe(0);
    }
    expect((await loadState(store, fmt))!.packages).toHaveLength(303);
  }, 300_000);

  it('does the same for YUM, and dnf reads the result', async () => {
    const channel = `yum${uid()}`;
    const target = { s3, bucket: artifactsBucket, distro: 'el9', dir: tempDir('state-rpm') };
    const rpms = await Promise.all(
      Array.from({ length: 16 }, (_, i) => buildTestRpm({ name: `r${i}`, version: '1.0', release: '1' }, target)),
    );
    const rpm = (artifacts: ArtifactRef[]): PublishPackagesInput => ({
      ...deb(channel, artifacts),
      distro: 'el9',
      distroSpec: { format: 'rpm', arch: 'x86_64' },
    });
    const acts = activities();
    await acts.publishPackages(rpm(rpms.slice(1)));
    const fmt = yumFormat({
      environment: 'staging',
      channel,
      distro: 'el9',
      distroSpec: { format: 'rpm', arch: 'x86_64' },
    });
    const store = createRepoStore(s3, bucket);
    const whole = Buffer.byteLength(JSON.stringify((await loadState(store, fmt))!));
    clock += 60_000;
    const inc = await during(() => acts.publishPackages(rpm([rpms[0]])));
    const reads = inc.filter((c) => c.command === 'GetObject' && c.key.startsWith('conveyor-state/'));
    const writes = inc.filter((c) => c.command === 'PutObject' && c.key.startsWith('conveyor-state/'));
    expect(reads.map((c) => c.key)).toEqual([fmt.stateKey]);
    expect(sum(reads) * 2).toBeLessThan(whole);
    expect(writes).toHaveLength(4);
    expect(sum(writes) * 2).toBeLessThan(whole);

    const dnf = dnfClient(tempDir('state-dnf'), {
      baseUrl: `${http}/${fmt.repoUrlPath}`,
      keyUrl: `${http}/keys/conveyor.asc`,
    });
    expect((await dnf.makecache()).exitCode).toBe(0);
    expect((await dnf.download('r0-1.0-1')).exitCode).toBe(0);
    expect((await dnf.download('r15-1.0-1')).exitCode).toBe(0);
  }, 300_000);

  it('migrates a single-object state written by the previous publisher, which then refuses the head', async () => {
    const channel = `mig${uid()}`;
    const target = { s3, bucket: artifactsBucket, distro: 'bookworm', dir: tempDir('mig-debs') };
    const old = [
      await buildTestDeb({ name: 'migra', version: '1.0-1', arch: 'amd64' }, target),
      await buildTestDeb({ name: 'migrb', version: '1.0-1', arch: 'all' }, target),
    ];
    const next = await buildTestDeb({ name: 'migra', version: '1.0-2', arch: 'amd64' }, target);
    const fmt = aptTarget(channel);
    const store = createRepoStore(s3, bucket);

    // The previous publisher, from git, with the same bucket and key.
    const tree = tempDir('single-object-publisher');
    execFileSync('sh', [
      '-c',
      `git -C "$1" archive "$2" activities common config | tar -x -C "$3"`,
      'sh',
      ROOT,
      SINGLE_OBJECT_COMMIT,
      tree,
    ]);
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(tree, 'node_modules'));
    fs.copyFileSync(path.join(ROOT, 'tsconfig.json'), path.join(tree, 'tsconfig.json'));
    fs.writeFileSync(path.join(tree, 'key.asc'), signingKey, { mode: 0o600 });
    fs.writeFileSync(
      path.join(tree, 'publish.ts'),
      [
        "import fs from 'node:fs';",
        "import { S3Client } from '@aws-sdk/client-s3';",
        "import { createRepositoryActivities } from './activities/repository';",
        "const input = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));",
        "const s3 = new S3Client({ endpoint: input.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: input.credentials });",
        "const acts = createRepositoryActivities({ s3, artifactsBucket: input.artifactsBucket, buckets: input.buckets, signingKey: () => fs.readFileSync('key.asc', 'utf8'), workDir: input.workDir });",
        'acts.publishPackages(input.publish).then((r) => process.stdout.write(JSON.stringify(r)), (e) => { process.stderr.write(`publish failed: ${e.message}`); process.exit(1); });',
        '',
      ].join('\n'),
    );
    const publishWithOld = async (artifacts: ArtifactRef[]) => {
      const input = path.join(tree, `input-${uid()}.json`);
      fs.writeFileSync(
        input,
        JSON.stringify({
          endpoint: testEnv().aws,
          credentials: LOCAL_CREDENTIALS,
          artifactsBucket,
          buckets: { staging: bucket, production },
          workDir: path.join(tree, 'work'),
          publish: deb(channel, artifacts),
        }),
      );
      return runProcess(path.join(ROOT, 'node_modules/.bin/tsx'), ['publish.ts', input], { cwd: tree });
    };
    const made = await publishWithOld(old);
    expect({ exit: made.exitCode, output: made.exitCode === 0 ? '' : made.output }).toEqual({ exit: 0, output: '' });
    const single = JSON.parse((await store.get(fmt.stateKey))!.toString('utf8')) as {
      schema: number;
      packages: unknown[];
    };
    expect(single.schema).toBe(1);
    expect(single.packages).toHaveLength(2);

    // Old readers of the new code read the single object as it is.
    const acts = activities();
    const versions = () =>
      acts.publishedVersions({
        environment: 'staging',
        channel,
        distro: 'bookworm',
        distroSpec: { format: 'deb', codename: 'bookworm', arch: 'amd64' },
        name: 'migra',
      });
    expect(await versions()).toEqual({ versions: ['1.0-1'] });

    clock = Date.now();
    const migrated = await acts.publishPackages(deb(channel, [next]));
    expect(migrated.generation).toBe(2);
    const head = JSON.parse((await store.get(fmt.stateKey))!.toString('utf8')) as Record<string, unknown>;
    expect(head).toMatchObject({ schema: 2, format: 'apt', generation: 2, count: 3 });
    expect(head.packages).toBeUndefined();
    const state = (await loadState(store, fmt))!;
    expect(state.packages.map((p) => `${p.name} ${p.version}`)).toEqual(['migra 1.0-1', 'migra 1.0-2', 'migrb 1.0-1']);
    expect(state.owners).toEqual({ migra: 'acme/state', migrb: 'acme/state' });
    expect(await versions()).toEqual({ versions: ['1.0-2', '1.0-1'] });
    // The snapshot the previous publisher wrote (packages inline) still reads, beside the new one.
    expect(await listGenerations(store, fmt)).toEqual([1, 2]);
    expect((await readSnapshot(store, fmt, 1))!.packages).toHaveLength(2);
    expect((await readSnapshot(store, fmt, 2))!.packages).toHaveLength(3);

    // The previous publisher now refuses instead of publishing from a stale copy; nothing changes.
    const inRelease = (await store.get(`apt/dists/bookworm-${channel}/InRelease`))!;
    const refused = await publishWithOld([next]);
    expect(refused.exitCode).not.toBe(0);
    expect(refused.output).toContain('is not a apt state manifest of schema 1');
    expect((await store.get(`apt/dists/bookworm-${channel}/InRelease`))!.equals(inRelease)).toBe(true);

    const apt = await aptClient(tempDir('mig-apt'), `${http}/apt`, `bookworm-${channel}`, `${http}/keys/conveyor.asc`);
    expect((await apt.update()).exitCode).toBe(0);
    expect((await apt.download('migra=1.0-2')).exitCode).toBe(0);
    expect((await apt.download('migrb=1.0-1')).exitCode).toBe(0);
  }, 300_000);

  it('prunes generation snapshots whose files the retention window no longer keeps', async () => {
    const channel = `prune${uid()}`;
    const target = { s3, bucket: artifactsBucket, distro: 'bookworm', dir: tempDir('prune-debs') };
    const builds = [];
    for (const v of ['1.0-1', '1.0-2', '1.0-3', '1.0-4']) {
      builds.push(await buildTestDeb({ name: 'prunee', version: v, arch: 'amd64' }, target));
    }
    const acts = activities(tempDir('prune-work'), 24);
    const fmt = aptTarget(channel);
    const store = createRepoStore(s3, bucket);
    const shardKeys = async () => [...(await store.list(`conveyor-state/apt/bookworm-${channel}.shards/`)).keys()];
    const rewrite = (to: number) =>
      acts.rewriteRepository({
        environment: 'staging',
        channel,
        distro: 'bookworm',
        distroSpec: { format: 'deb', codename: 'bookworm', arch: 'amd64' },
        action: { kind: 'rollback', to },
      });

    await acts.publishPackages(deb(channel, [builds[0]], 1)); // generation 1
    const gen1Shards = await shardKeys();
    clock += 3_600_000;
    await acts.publishPackages(deb(channel, [builds[1]], 1)); // 2: generation 1 retired now
    clock += 25 * 3_600_000;
    await acts.publishPackages(deb(channel, [builds[2]], 1)); // 3: 1 is past the window, 2 retires now
    expect(await listGenerations(store, fmt)).toEqual([2, 3]);
    // Generation 1's own shards went with it; 2's are kept, so its snapshot still reads.
    const now = await shardKeys();
    expect(gen1Shards.filter((k) => now.includes(k))).toEqual([]);
    expect((await readSnapshot(store, fmt, 2))!.packages.map((p) => p.version)).toEqual(['1.0-2']);
    await expect(rewrite(1)).rejects.toThrow(/has no snapshot of generation 1 \(snapshots: 2, 3;/);

    clock += 23 * 3_600_000;
    await acts.publishPackages(deb(channel, [builds[3]], 1)); // 4: 2 retired 23 h ago, kept
    expect(await listGenerations(store, fmt)).toEqual([2, 3, 4]);
    const head = JSON.parse((await store.get(fmt.stateKey))!.toString('utf8')) as { history: { generation: number }[] };
    expect(head.history.map((e) => e.generation)).toEqual([2, 3, 4]);
    // Rolling back to 2, still within the window, works.
    const back = await rewrite(2);
    expect(back.generation).toBe(5);
    expect((await loadState(store, fmt))!.packages.map((p) => p.version)).toEqual(['1.0-2']);
    clock += 2 * 3_600_000;
    // Generation 2 left the index 25 h ago (when 3 went live), 3 two hours ago.
    await acts.publishPackages(deb(channel, [builds[3]], 1)); // 6
    expect(await listGenerations(store, fmt)).toEqual([3, 4, 5, 6]);
    const apt = await aptClient(
      tempDir('prune-apt'),
      `${http}/apt`,
      `bookworm-${channel}`,
      `${http}/keys/conveyor.asc`,
    );
    expect((await apt.update()).exitCode).toBe(0);
    expect((await apt.download('prunee=1.0-4')).exitCode).toBe(0);
  }, 300_000);
});
