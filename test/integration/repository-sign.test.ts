// rpms signed once at package time (activities/repository/sign-packages.ts), against the real test
// stack: the signed file is stored as the build's artifact, rpm verifies its signature, a retry
// keeps the first signature, and publishing it to staging and then production uploads exactly
// those bytes, which dnf installs with gpgcheck. What a build worker could plant is refused: a
// reference to another build's key, a file at the signed key that is not our signature on the
// builder's rpm, a reference that claims a signer for an unsigned file.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { runChecked } from '../../activities/exec/process';
import { identityMetadata, identityOf, packageKey } from '../../activities/packaging/packaging-env';
import { readObject, storeObject } from '../../activities/packaging/store-object';
import { createRepositoryActivities, publicKeyOf, type RepositoryActivities } from '../../activities/repository';
import { publicKeyFingerprints } from '../../activities/repository/gpg';
import { rpmSignatureProblem, rpmSignatureProblems } from '../../activities/repository/rpm-signature';
import { signedKey } from '../../activities/repository/sign-packages';
import type { ArtifactRef, RepositorySpec } from '../../common/types';
import { parseS3Url, repositorySpec } from '../../config/conveyor';
import { buildTestRpm, otherSigningKey, testSigningKey } from '../helpers/packages';
import { dnfClient } from '../helpers/readers';
import { awsFor, tempDir, testConfig, testEnv } from '../helpers/stack';

const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
const COMMIT = 'c0ffee'.padEnd(40, '0');
const fingerprint = async (armoredPrivate: string) =>
  (await publicKeyFingerprints(await publicKeyOf(armoredPrivate)))[0];

describe('rpms signed once at package time', () => {
  let s3: S3Client;
  let artifactsBucket: string;
  let buckets: { staging: string; production: string };
  let http: { staging: string; production: string };
  let spec: RepositorySpec;
  let acts: RepositoryActivities;
  let key: string;

  beforeAll(async () => {
    const config = testConfig([{ name: 'acme/tally', cloneUrl: '/nonexistent', steps: { package: 'true' } }]);
    s3 = (await awsFor(config)).s3;
    artifactsBucket = parseS3Url(config.storage.artifacts).bucket;
    buckets = {
      staging: parseS3Url(config.storage.staging).bucket,
      production: parseS3Url(config.storage.production).bucket,
    };
    http = { staging: `${testEnv().aws}/${buckets.staging}`, production: `${testEnv().aws}/${buckets.production}` };
    const repo = config.repositories[0];
    spec = repositorySpec(config, repo, repo.branches[0]);
    key = await testSigningKey();
    acts = createRepositoryActivities({ s3, artifactsBucket, artifactsPrefix: '', buckets, signingKey: () => key });
  });

  /** An rpm of build `build`, stored where and as the package stage stores it (unsigned). */
  async function packaged(build: number): Promise<{ ref: ArtifactRef; file: string }> {
    const ctx = { repository: spec, branch: 'main', sha: COMMIT, build };
    const built = await buildTestRpm(
      { name: 'tally', version: '2.3.0', release: String(build) },
      { s3, bucket: artifactsBucket, distro: 'el9', dir: tempDir('sign-build') },
    );
    const k = packageKey('', ctx, 'el9', built.file);
    const stored = await storeObject(s3, artifactsBucket, k, { file: built.path }, { owner: identityMetadata(ctx) });
    const ref: ArtifactRef = {
      key: k,
      sha256: stored.sha256,
      size: stored.size,
      name: 'tally',
      version: built.version,
      arch: 'noarch',
      format: 'rpm',
      distro: 'el9',
      file: built.file,
      ...identityOf(ctx),
    };
    return { ref, file: built.path };
  }

  const sign = (build: number, artifacts: ArtifactRef[]) =>
    acts.signPackages({ repository: spec, branch: 'main', sha: COMMIT, build, distro: 'el9', artifacts });

  /** An object's bytes: through S3 for the private artifacts bucket, over HTTP as a client reads
   * for the repositories. */
  async function object(bucket: string, k: string): Promise<Buffer> {
    if (bucket === artifactsBucket) return readObject(s3, bucket, k);
    const res = await fetch(`${testEnv().aws}/${bucket}/${k}`);
    if (res.status !== 200) throw new Error(`${bucket}/${k}: HTTP ${res.status}`);
    return Buffer.from(await res.arrayBuffer());
  }

  async function rpmCheck(bytes: Buffer): Promise<string> {
    const db = tempDir('sign-rpmdb');
    fs.writeFileSync(path.join(db, 'x.rpm'), bytes);
    fs.writeFileSync(path.join(db, 'key.asc'), await (await fetch(`${http.staging}/keys/conveyor.asc`)).text());
    await runChecked('rpm', ['--dbpath', path.join(db, 'db'), '--import', path.join(db, 'key.asc')]);
    return runChecked('rpm', ['--dbpath', path.join(db, 'db'), '-K', path.join(db, 'x.rpm')]);
  }

  it('stores the signed rpm as the artifact and publishes those bytes to staging and production', async () => {
    const { ref } = await packaged(7);
    const { artifacts } = await sign(7, [ref]);
    expect(artifacts).toHaveLength(1);
    const signed = artifacts[0];
    expect(signed.signer).toMatch(/^[0-9A-F]{40}$/);
    expect(signed.key).toBe(signedKey('', signed.signer!, ref.key));
    expect(signed.unsigned).toEqual({ key: ref.key, sha256: ref.sha256, size: ref.size });
    expect(signed.sha256).not.toBe(ref.sha256);
    const stored = await object(artifactsBucket, signed.key);
    expect(sha256(stored)).toBe(signed.sha256);
    expect(stored.length).toBe(signed.size);

    // A retry keeps the first signature (signing is not reproducible): same key, same bytes.
    expect((await sign(7, [ref])).artifacts).toEqual(artifacts);

    const publish = {
      channel: 'unstable',
      distro: 'el9',
      distroSpec: { format: 'rpm' as const, arch: 'x86_64' },
      artifacts,
      keepBuilds: 3,
      repository: 'acme/tally',
      packages: ['tally'],
    };
    const staging = await acts.publishPackages({ ...publish, environment: 'staging' });
    const production = await acts.publishPackages({ ...publish, environment: 'production' });
    const pool = `yum/el9/unstable/Packages/${ref.file}`;
    expect(staging.uploaded).toContain(pool);
    expect(production.uploaded).toContain(pool);
    const inStaging = await object(buckets.staging, pool);
    const inProduction = await object(buckets.production, pool);
    expect(sha256(inStaging)).toBe(signed.sha256);
    expect(sha256(inProduction)).toBe(signed.sha256);
    expect(await rpmCheck(inProduction)).toMatch(/digests signatures OK/);

    const dnf = dnfClient(tempDir('sign-dnf'), {
      baseUrl: `${http.production}/yum/el9/unstable`,
      keyUrl: `${http.production}/keys/conveyor.asc`,
    });
    expect((await dnf.makecache()).exitCode).toBe(0);
    const inst = await dnf.install(`tally-${ref.version}`);
    expect(inst.exitCode).toBe(0);
    expect((await dnf.installed('tally')).output.trim()).toBe(`tally-${ref.version}.noarch`);
  });

  it('checks many rpms at once against one key database: each verdict its own', async () => {
    const { ref, file: unsigned } = await packaged(9);
    const { artifacts } = await sign(9, [ref]);
    const signedFile = path.join(tempDir('sign-many'), 'signed.rpm');
    fs.writeFileSync(signedFile, await object(artifactsBucket, artifacts[0].key));
    const signer = { fingerprint: artifacts[0].signer!, publicKey: await publicKeyOf(key) };
    // The database holding the key is made once per key and shared by checks running side by side.
    const verdicts = await Promise.all(
      Array.from({ length: 12 }, (_, i) => rpmSignatureProblem(i % 3 === 2 ? unsigned : signedFile, signer)),
    );
    verdicts.forEach((v, i) => {
      if (i % 3 === 2) expect(v).toMatch(/^it carries no header signature by key [0-9A-F]{40}/);
      else expect(v).toBeUndefined();
    });
    // Another key's database is another one: the same signed file is not accepted by it.
    const other = await otherSigningKey(tempDir('sign-other'), 'other');
    const wrong = { fingerprint: await fingerprint(other), publicKey: await publicKeyOf(other) };
    expect(await rpmSignatureProblem(signedFile, wrong)).toMatch(
      /rpm -K does not accept it|carries no header signature/,
    );

    // A check cancelled while the database for a new key is being made cancels only itself: the
    // check waiting for the same database still gets its verdict.
    const third = await otherSigningKey(tempDir('sign-third'), 'third');
    const fresh = { fingerprint: await fingerprint(third), publicKey: await publicKeyOf(third) };
    const stop = new AbortController();
    const cancelled = rpmSignatureProblem(signedFile, fresh, stop.signal);
    const waiting = rpmSignatureProblem(signedFile, fresh);
    stop.abort(new Error('cancelled by the test'));
    await expect(cancelled).rejects.toThrow('cancelled by the test');
    expect(await waiting).toMatch(/^(rpm -K does not accept it|it carries no header signature)/);
  });

  it("checks a batch of rpms with one rpm -K each batch, every verdict the single check's", async () => {
    const { ref, file: unsigned } = await packaged(10);
    const { artifacts } = await sign(10, [ref]);
    const dir = tempDir('sign-batch');
    const signedBytes = await object(artifactsBucket, artifacts[0].key);
    const signer = { fingerprint: artifacts[0].signer!, publicKey: await publicKeyOf(key) };
    const at = (name: string, bytes: Buffer) => {
      const p = path.join(dir, name);
      fs.mkdirSync(path.dirname(p), { recursive: true });
      fs.writeFileSync(p, bytes);
      return p;
    };
    const good = Array.from({ length: 300 }, (_, i) => at(`good-${i}.rpm`, signedBytes));
    // rpm names each file at the head of its section: a path that carries a newline and a forged
    // verdict line, a path given twice and one rpm cannot read must each get the single check.
    const forged = at(
      `forged.rpm:\n    Header V4 RSA/SHA256 Signature, key ID ${signer.fingerprint.slice(-8).toLowerCase()}: OK\nx`,
      fs.readFileSync(unsigned),
    );
    const files = [
      ...good.slice(0, 150),
      at('unsigned.rpm', fs.readFileSync(unsigned)),
      forged,
      at('not-an-rpm.rpm', Buffer.from('hello')),
      good[0],
      ...good.slice(150),
    ];
    const batch = await rpmSignatureProblems(files, signer);
    const single = await Promise.all(files.map((f) => rpmSignatureProblem(f, signer)));
    expect(batch).toEqual(single);
    expect(batch.filter((v) => v === undefined)).toHaveLength(301);
    expect(batch[150]).toMatch(/^it carries no header signature by key/);
    expect(batch[151]).toMatch(/^it carries no header signature by key/);
    expect(batch[152]).toMatch(/^(rpm -K does not accept it|it carries no header signature)/);
    // Under another key, none passes.
    const other = await otherSigningKey(tempDir('sign-batch-other'), 'batch-other');
    const wrong = { fingerprint: await fingerprint(other), publicKey: await publicKeyOf(other) };
    const refused = await rpmSignatureProblems(good.slice(0, 5), wrong);
    expect(refused.every((v) => v !== undefined)).toBe(true);
  });

  it("refuses a reference to another build's object and a file planted at the signed key", async () => {
    const { ref, file } = await packaged(8);
    const other = await sign(8, [{ ...ref, key: ref.key.replace('/8/', '/9/') }]).catch((e: unknown) => e);
    expect(other).toMatchObject({ type: 'BadPackage' });
    expect((other as Error).message).toMatch(/is not where the package stage stores this build's/);

    // Planted by a builder (they may write to the artifacts bucket): the builder's own unsigned rpm,
    // with metadata that names the build.
    const target = signedKey('', await fingerprint(key), ref.key);
    await s3.send(
      new PutObjectCommand({
        Bucket: artifactsBucket,
        Key: target,
        Body: fs.readFileSync(file),
        Metadata: {
          ...identityMetadata({ repository: spec, branch: 'main', sha: COMMIT, build: 8 }),
          sha256: ref.sha256,
        },
      }),
    );
    const planted = await sign(8, [ref]).catch((e: unknown) => e);
    expect(planted).toMatchObject({ type: 'ArtifactMismatch' });
    expect((planted as Error).message).toMatch(/carries no header signature by key/);
  });

  it('refuses a file signed by another key at the signed key, and a reference that claims a signer', async () => {
    const { ref } = await packaged(10);
    const wrongKey = await otherSigningKey(tempDir('sign-keys'), 'impostor');
    const impostor = createRepositoryActivities({
      s3,
      artifactsBucket,
      artifactsPrefix: '',
      buckets,
      signingKey: () => wrongKey,
    });
    // The impostor's signature on the same rpm, moved to where our key's signature belongs.
    const theirs = (
      await impostor.signPackages({
        repository: spec,
        branch: 'main',
        sha: COMMIT,
        build: 10,
        distro: 'el9',
        artifacts: [ref],
      })
    ).artifacts[0];
    const ours = await fingerprint(key);
    const bytes = await object(artifactsBucket, theirs.key);
    await s3.send(
      new PutObjectCommand({
        Bucket: artifactsBucket,
        Key: signedKey('', ours, ref.key),
        Body: bytes,
        Metadata: {
          ...identityMetadata({ repository: spec, branch: 'main', sha: COMMIT, build: 10 }),
          sha256: sha256(bytes),
        },
      }),
    );
    const refused = await sign(10, [ref]).catch((e: unknown) => e);
    expect(refused).toMatchObject({ type: 'ArtifactMismatch' });
    expect((refused as Error).message).toMatch(/rpm -K does not accept it|no header signature by key/);

    // An unsigned artifact whose reference says it was signed by our key: not published.
    const { ref: plain } = await packaged(11);
    const claimed = await acts
      .publishPackages({
        environment: 'staging',
        channel: 'claims',
        distro: 'el9',
        distroSpec: { format: 'rpm', arch: 'x86_64' },
        artifacts: [{ ...plain, signer: ours }],
        keepBuilds: 3,
        repository: 'acme/tally',
        packages: ['tally'],
      })
      .catch((e: unknown) => e);
    expect(claimed).toMatchObject({ type: 'BadPackage' });
    expect((claimed as Error).message).toMatch(
      /is recorded as signed at package time by [0-9A-F]{40}, but it carries no header signature/,
    );
  });
});
