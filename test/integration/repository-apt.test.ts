// The APT repository as real apt-get sees it: published by the activity into the test stack's S3
// endpoint, read over HTTP with `signed-by=` the key published beside it, outside any chroot
// (shared/FACTS.md lists the options). A tampered index and an unsigned Release must be refused,
// and the next publish of the same input repairs both.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { type createRepositoryActivities, type PublishPackagesInput } from '../../activities/repository';
import { buildTestDeb, testPublisher, type TestArtifact } from '../helpers/packages';
import { aptClient } from '../helpers/readers';
import { awsFor, tempDir, testConfig, testEnv } from '../helpers/stack';

const sha256 = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

describe('APT repository read by apt-get', () => {
  let s3: S3Client;
  let bucket: string;
  let http: string;
  let publish: (
    input: PublishPackagesInput,
  ) => ReturnType<ReturnType<typeof createRepositoryActivities>['publishPackages']>;
  let input: PublishPackagesInput;
  let tally: TestArtifact;
  let tool: TestArtifact;
  let n = 0;
  const client = () =>
    aptClient(tempDir(`apt-${++n}`), `${http}/apt`, 'bookworm-unstable', `${http}/keys/conveyor.asc`);

  beforeAll(async () => {
    const config = testConfig([]);
    s3 = (await awsFor(config)).s3;
    const made = await testPublisher(config, s3, 'apt');
    bucket = made.bucket;
    http = `${testEnv().aws}/${bucket}`;
    publish = made.acts.publishPackages;
    const { target } = made;
    [tally, tool] = await Promise.all([
      buildTestDeb({ name: 'tally', version: '2.3.0-5', arch: 'all' }, target),
      buildTestDeb({ name: 'tally-tool', version: '1.0.0-1', arch: 'amd64' }, target),
    ]);
    input = {
      environment: 'staging',
      channel: 'unstable',
      distro: 'bookworm',
      distroSpec: { format: 'deb', codename: 'bookworm', arch: 'amd64' },
      artifacts: [tally, tool],
      keepBuilds: 3,
      repository: 'acme/tally',
      packages: ['tally', 'tally-tool'],
    };
  });

  it('publishes a signed suite that apt-get updates from and downloads the exact versions of', async () => {
    const r = await publish(input);
    expect(r).toMatchObject({
      changed: true,
      repoUrlPath: 'apt',
      suite: 'bookworm-unstable',
      keyPath: 'keys/conveyor.asc',
    });
    const release = await (await fetch(`${http}/apt/dists/bookworm-unstable/Release`)).text();
    expect(release).toMatch(/^Suite: bookworm-unstable$/m);
    expect(release).toMatch(/^Architectures: amd64$/m);
    expect(release).toMatch(/^Acquire-By-Hash: yes$/m);

    const apt = await client();
    const up = await apt.update();
    expect(up.output).not.toMatch(/^(W|E):/m);
    expect(up.exitCode).toBe(0);
    for (const a of [tally, tool]) {
      const dl = await apt.download(`${a.name}=${a.version}`);
      expect(dl.exitCode).toBe(0);
      // The exact bytes that were built: `Architecture: all` is listed in binary-amd64 too.
      expect(sha256(apt.file(a.file))).toBe(a.sha256);
    }
  });

  it('refuses a tampered Packages index, and a republish repairs it', async () => {
    const packagesKey = 'apt/dists/bookworm-unstable/main/binary-amd64/Packages';
    const original = await (
      await s3.send(new GetObjectCommand({ Bucket: bucket, Key: packagesKey }))
    ).Body!.transformToString();
    // Point tally's entry at other bytes: a Packages file that no longer matches the signed Release.
    const forged = original.replace(/^SHA256: [0-9a-f]+$/m, `SHA256: ${'0'.repeat(64)}`);
    expect(forged).not.toBe(original);
    const gz = (await import('node:zlib')).gzipSync(forged);
    const index = JSON.parse(
      await (
        await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'conveyor-state/apt/bookworm-unstable.json' }))
      ).Body!.transformToString(),
    ) as { current: { key: string }[] };
    // Every copy apt could fetch: plain, gzip, and the by-hash names the Release lists.
    for (const { key } of index.current) {
      const body = key.endsWith('.gz') || (await isGzip(key)) ? gz : Buffer.from(forged);
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    }
    const apt = await client();
    const up = await apt.update();
    expect(up.exitCode).not.toBe(0);
    expect(up.output).toMatch(/Hash Sum mismatch|File has unexpected size/);

    // Same sizes, other bytes: the listing's ETags (MD5) give every forged copy away.
    const again = await publish(input);
    expect(again.uploaded).toEqual(expect.arrayContaining(index.current.map((r) => r.key)));
    expect(await (await fetch(`${http}/${packagesKey}`)).text()).toBe(original);
    const fixed = await client();
    expect((await fixed.update()).exitCode).toBe(0);
    expect((await fixed.download(`tally=${tally.version}`)).exitCode).toBe(0);
  });

  it('refuses an unsigned Release, and a republish signs it again', async () => {
    for (const name of ['InRelease', 'Release.gpg']) {
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: `apt/dists/bookworm-unstable/${name}` }));
    }
    const apt = await client();
    const up = await apt.update();
    expect(up.exitCode).not.toBe(0);
    expect(up.output).toMatch(/is not signed/);

    const again = await publish(input);
    expect(again.uploaded).toEqual(expect.arrayContaining(['apt/dists/bookworm-unstable/InRelease']));
    const fixed = await client();
    expect((await fixed.update()).exitCode).toBe(0);
  });

  async function isGzip(key: string): Promise<boolean> {
    const head = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: 'bytes=0-1' }));
    const b = await head.Body!.transformToByteArray();
    return b[0] === 0x1f && b[1] === 0x8b;
  }
});
