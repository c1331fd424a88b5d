// Staging hosts for the fleet tests: real Debian roots (activities/fleet/local-host.ts) copied from
// base roots cached per user, so repeated runs and CI on the same machine debootstrap only once
// (~30 s for deb, ~60 s for rpm); per-test copies live in the test's temp dir. Hosts are registered
// as instances in the test stack's EC2 endpoint (moto) with the tags the deploy stage filters by,
// and a real signed repository is published to the staging bucket for them to install from.
import path from 'node:path';
import { DescribeImagesCommand, RunInstancesCommand, type EC2Client } from '@aws-sdk/client-ec2';
import type { S3Client } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import { defaultBaseDir, ensureLocalHost } from '../../activities/fleet';
import type { HostExecutor, PackageFormat } from '../../activities/fleet';
import { createRepositoryActivities, PUBLIC_KEY_PATH } from '../../activities/repository';
import { parseS3Url, type ConveyorConfig } from '../../config/conveyor';
import { buildTestDeb, buildTestRpm, testSigningKey, type TestArtifact } from './packages';
import { testEnv } from './stack';

/** Where the base roots are cached: `${XDG_CACHE_HOME:-~/.cache}/conveyor/hosts`. */
export function hostsCacheDir(): string {
  return defaultBaseDir();
}

const reported = new Set<string>();

/** A fresh local host `<dir>/<name>` (a copy of the cached base; the base is made first if missing). */
export async function makeLocalHost(dir: string, name: string, format: PackageFormat): Promise<string> {
  const root = path.join(dir, name);
  const made = await ensureLocalHost(root, format, { baseDir: hostsCacheDir() });
  if (made.baseBuiltMs !== undefined && !reported.has(made.base)) {
    reported.add(made.base);
    process.stderr.write(`fleet tests: made the ${format} base root ${made.base} in ${made.baseBuiltMs} ms\n`);
  }
  return root;
}

let imageId: string | undefined;

export interface HostSpec {
  name: string;
  distro: string;
  executor: HostExecutor;
  tags: Record<string, string>;
  root?: string;
  address?: string;
}

/** Registers one instance per spec (one reservation each) with the deploy stage's tags. */
export async function registerHosts(ec2: EC2Client, specs: HostSpec[]): Promise<string[]> {
  imageId ??= (await ec2.send(new DescribeImagesCommand({}))).Images?.[0]?.ImageId;
  if (!imageId) throw new Error('the test EC2 endpoint offers no image');
  const ids: string[] = [];
  for (const s of specs) {
    const tags: Record<string, string> = {
      ...s.tags,
      Name: s.name,
      Distro: s.distro,
      ConveyorExecutor: s.executor,
      ...(s.root ? { ConveyorHostRoot: s.root } : {}),
      ...(s.address ? { ConveyorSshAddress: s.address } : {}),
    };
    const run = await ec2.send(
      new RunInstancesCommand({
        ImageId: imageId,
        MinCount: 1,
        MaxCount: 1,
        InstanceType: 't3.micro',
        TagSpecifications: [
          { ResourceType: 'instance', Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) },
        ],
      }),
    );
    const id = run.Instances?.[0]?.InstanceId;
    if (!id) throw new Error(`RunInstances returned no instance for ${s.name}`);
    ids.push(id);
  }
  return ids;
}

/** A staging fleet of one fresh local host per distro of `config`, named `<distro>-<suffix>` and
 * registered with `tags` (those of the repository's `staging.tags`). Returns each distro's root. */
export async function makeStagingHosts(
  ec2: EC2Client,
  config: ConveyorConfig,
  hostsDir: string,
  tags: Record<string, string>,
  suffix: string,
): Promise<Record<string, string>> {
  const roots: Record<string, string> = {};
  const specs: HostSpec[] = [];
  for (const [distro, spec] of Object.entries(config.distros)) {
    const name = `${distro}-${suffix}`;
    roots[distro] = await makeLocalHost(hostsDir, name, spec.format);
    specs.push({ name, distro, executor: 'local', tags, root: roots[distro] });
  }
  await registerHosts(ec2, specs);
  return roots;
}

export interface StagingRepo {
  /** http://127.0.0.1:<port>/<staging bucket> */
  bucketUrl: string;
  keyUrl: string;
  apt: { url: string; suite: string };
  yum: { url: string };
}

/**
 * Builds `name` at each version for the config's deb and rpm distros and publishes them to the
 * staging bucket's `channel` with the repository activities, as the publish stage does.
 */
export async function publishStaging(
  config: ConveyorConfig,
  s3: S3Client,
  dir: string,
  name: string,
  versions: string[],
  channel = 'unstable',
  owner: { repository?: string; packages?: string[] } = {},
): Promise<StagingRepo> {
  const artifactsBucket = parseS3Url(config.storage.artifacts).bucket;
  const staging = parseS3Url(config.storage.staging).bucket;
  const key = await testSigningKey();
  const repos = createRepositoryActivities({
    s3,
    artifactsBucket,
    buckets: { staging, production: parseS3Url(config.storage.production).bucket },
    signingKey: () => key,
    workDir: dir,
  });
  const bucketUrl = `${testEnv().aws}/${staging}`;
  const repo: StagingRepo = {
    bucketUrl,
    keyUrl: `${bucketUrl}/${PUBLIC_KEY_PATH}`,
    apt: { url: '', suite: '' },
    yum: { url: '' },
  };
  for (const [distro, spec] of Object.entries(config.distros)) {
    const target = { s3, bucket: artifactsBucket, distro, dir };
    const artifacts: TestArtifact[] = [];
    for (const v of versions) {
      const [version, release] = v.split('-');
      artifacts.push(
        spec.format === 'deb'
          ? await buildTestDeb({ name, version: v, arch: 'all' }, target)
          : await buildTestRpm({ name, version, release }, target),
      );
    }
    const published = await repos.publishPackages({
      environment: 'staging',
      channel,
      distro,
      distroSpec: spec,
      artifacts,
      keepBuilds: 10,
      // By default the package's own repository: `name` is its default package.
      repository: owner.repository ?? `test/${name}`,
      packages: owner.packages,
    });
    if (spec.format === 'deb') repo.apt = { url: `${bucketUrl}/${published.repoUrlPath}`, suite: published.suite! };
    else repo.yum = { url: `${bucketUrl}/${published.repoUrlPath}` };
  }
  return repo;
}

/** The ApplicationFailure `p` rejects with (fails the test when it resolves or rejects otherwise). */
export async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}
