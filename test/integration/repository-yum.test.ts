// The YUM repository as real dnf sees it: published by the activity into the test stack's S3
// endpoint and read over HTTP with gpgcheck=1 and repo_gpgcheck=1 (installroot, reposdir and
// cachedir in a temp dir, plugins off: shared/FACTS.md). A package signed by another key and an
// unsigned one must be refused at install.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { runChecked } from '../../activities/exec/process';
import {
  createRepositoryActivities,
  type PublishPackagesInput,
  type PublishPackagesResult,
} from '../../activities/repository';
import { parseS3Url } from '../../config/conveyor';
import { buildTestRpm, otherSigningKey, testSigningKey, type TestArtifact } from '../helpers/packages';
import { dnfClient } from '../helpers/readers';
import { awsFor, dyingS3, tempDir, testConfig, testEnv } from '../helpers/stack';

const sha256 = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

describe('YUM repository read by dnf', () => {
  let s3: S3Client;
  let http: { staging: string; production: string };
  let artifactsBucket: string;
  let buckets: { staging: string; production: string };
  let key: string;
  let tally: TestArtifact;
  let input: PublishPackagesInput;
  let staged: PublishPackagesResult;
  let n = 0;
  const dir = () => tempDir(`dnf-${++n}`);

  beforeAll(async () => {
    const config = testConfig([]);
    s3 = (await awsFor(config)).s3;
    artifactsBucket = parseS3Url(config.storage.artifacts).bucket;
    buckets = {
      staging: parseS3Url(config.storage.staging).bucket,
      production: parseS3Url(config.storage.production).bucket,
    };
    http = { staging: `${testEnv().aws}/${buckets.staging}`, production: `${testEnv().aws}/${buckets.production}` };
    key = await testSigningKey();
    tally = await buildTestRpm(
      { name: 'tally', version: '2.3.0', release: '5' },
      { s3, bucket: artifactsBucket, distro: 'el9', dir: tempDir('yum-build') },
    );
    input = {
      environment: 'staging',
      channel: 'unstable',
      distro: 'el9',
      distroSpec: { format: 'rpm', arch: 'x86_64' },
      artifacts: [tally],
      keepBuilds: 3,
      repository: 'acme/tally',
    };
    // Staging, signed with the test key: every test reads it or trusts its key.
    staged = await createRepositoryActivities({ s3, artifactsBucket, buckets, signingKey: () => key }).publishPackages(
      input,
    );
  });

  it('publishes signed rpms and metadata that dnf caches, downloads and installs with gpgcheck', async () => {
    const r = staged;
    expect(r).toMatchObject({ changed: true, repoUrlPath: 'yum/el9/unstable', keyPath: 'keys/conveyor.asc' });
    expect(r.indexKeys).toEqual(
      expect.arrayContaining(['yum/el9/unstable/repodata/repomd.xml', 'yum/el9/unstable/repodata/repomd.xml.asc']),
    );
    const opts = { baseUrl: `${http.staging}/yum/el9/unstable`, keyUrl: `${http.staging}/keys/conveyor.asc` };

    const dnf = dnfClient(dir(), opts);
    const cache = await dnf.makecache();
    expect(cache.output).toMatch(/Metadata cache created/);
    expect(cache.exitCode).toBe(0);
    const dl = await dnf.download(`tally-${tally.version}`);
    expect(dl.exitCode).toBe(0);
    // The published rpm is the artifact plus our signature: rpm itself checks it against the key.
    const got = dnf.file(tally.file);
    expect(sha256(got)).not.toBe(tally.sha256);
    const db = dir();
    fs.writeFileSync(path.join(db, 'key.asc'), await (await fetch(opts.keyUrl)).text());
    await runChecked('rpm', ['--dbpath', db, '--import', path.join(db, 'key.asc')]);
    expect(await runChecked('rpm', ['--dbpath', db, '-K', got])).toMatch(/digests signatures OK/);

    const host = dnfClient(dir(), opts);
    const inst = await host.install(`tally-${tally.version}`);
    expect(inst.exitCode).toBe(0);
    expect((await host.installed('tally')).output.trim()).toBe('tally-2.3.0-5.noarch');
  });

  it('refuses metadata and packages signed by a key the client does not trust', async () => {
    // Production signed with another key; the client trusts staging's key only.
    const wrong = await otherSigningKey(tempDir('keys'), 'impostor');
    const acts = createRepositoryActivities({ s3, artifactsBucket, buckets, signingKey: () => wrong });
    await acts.publishPackages({ ...input, environment: 'production' });
    const opts = { baseUrl: `${http.production}/yum/el9/unstable`, keyUrl: `${http.staging}/keys/conveyor.asc` };

    const repoCheck = await dnfClient(dir(), opts).makecache();
    expect(repoCheck.exitCode).not.toBe(0);
    expect(repoCheck.output).toMatch(/repomd\.xml GPG signature verification error: Bad GPG signature/);

    const pkgCheck = dnfClient(dir(), { ...opts, repoGpgcheck: false });
    const inst = await pkgCheck.install(`tally-${tally.version}`);
    expect(inst.exitCode).not.toBe(0);
    expect(inst.output).toMatch(/Public key for tally-2\.3\.0-5\.noarch\.rpm is not installed/);
    expect(inst.output).toMatch(/GPG check FAILED/);
    expect((await pkgCheck.installed('tally')).exitCode).not.toBe(0);
  });

  it('leaves dnf refusing a torn switch (the known gap) until the retry rewrites both files', async () => {
    // YUM's switch is two objects. A publisher that dies once repomd.xml has landed leaves its old
    // .asc beside it, and no .asc could cover both: librepo reads only the first signature in it
    // (measured in session 13 with two signatures in either order). README, Repositories.
    const acts = createRepositoryActivities({ s3, artifactsBucket, buckets, signingKey: () => key });
    const torn = { ...input, channel: 'torn' };
    await acts.publishPackages(torn);
    const dying = dyingS3(testConfig([]), (key) =>
      key.endsWith('/repodata/repomd.xml.asc') ? 'the publisher died after repomd.xml' : undefined,
    );
    const next = await buildTestRpm(
      { name: 'tally', version: '2.3.0', release: '6' },
      { s3, bucket: artifactsBucket, distro: 'el9', dir: tempDir('yum-build') },
    );
    const newer = { ...torn, artifacts: [tally, next] };
    await expect(
      createRepositoryActivities({ s3: dying, artifactsBucket, buckets, signingKey: () => key }).publishPackages(newer),
    ).rejects.toThrow('the publisher died after repomd.xml');
    const opts = { baseUrl: `${http.staging}/yum/el9/torn`, keyUrl: `${http.staging}/keys/conveyor.asc` };
    const during = await dnfClient(dir(), opts).makecache();
    expect(during.exitCode).not.toBe(0);
    expect(during.output).toMatch(/repomd\.xml GPG signature verification error: Bad GPG signature/);

    expect(await acts.publishPackages(newer)).toMatchObject({ changed: true });
    const after = dnfClient(dir(), opts);
    expect((await after.makecache()).exitCode).toBe(0);
    const dl = await after.download('tally-2.3.0-6');
    expect(dl.exitCode).toBe(0);
  });

  it('refuses an unsigned rpm at install', async () => {
    const repo = dir();
    fs.mkdirSync(path.join(repo, 'Packages'));
    fs.copyFileSync(tally.path, path.join(repo, 'Packages', tally.file));
    await runChecked('createrepo_c', ['--quiet', repo]);
    const dnf = dnfClient(dir(), {
      baseUrl: `file://${repo}`,
      keyUrl: `${http.staging}/keys/conveyor.asc`,
      repoGpgcheck: false,
    });
    const inst = await dnf.install(`tally-${tally.version}`);
    expect(inst.exitCode).not.toBe(0);
    expect(inst.output).toMatch(/Package tally-2\.3\.0-5\.noarch\.rpm is not signed/);
  });
});
