// rpms signed once at package time (activities/repository/sign-packages.ts), against the real test
// stack: the signed file is stored as the build's artifact, rpm verifies its signature, a retry
// keeps the first signature, and publishing it to staging and then production uploads exactly
// those bytes, which dnf installs with gpgcheck. What a build worker could plant is refused: a
// reference to another build's key, a file at the signed key that is not our signature on the
// builder's rpm, a reference that claims a signer for an unsigned file. The facts signPackages
// stores beside each signed rpm (rpm-index-facts.ts) stand in for its download at publish time:
// the index is the one reading the rpm makes, and facts changed, planted or not describing the
// reference are not used (the rpm is read, and the log says why). The S3 client's GetObject
// requests are recorded (a middleware on the real client) to show what was downloaded.
import zlib from 'node:zlib';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { runChecked } from '../../activities/exec/process';
import { identityMetadata, identityOf, packageKey } from '../../activities/packaging/packaging-env';
import { readObject, storeObject } from '../../activities/packaging/store-object';
import {
  createRepositoryActivities,
  publicKeyOf,
  type PublishPackagesInput,
  type RepositoryActivities,
} from '../../activities/repository';
import { yumIndexKey } from '../../activities/repository/rpm-index-facts';
import { publicKeyFingerprints } from '../../activities/repository/gpg';
import { rpmSignatureProblem, rpmSignatureProblems } from '../../activities/repository/rpm-signature';
import { signedKey } from '../../activities/repository/sign-packages';
import type { ArtifactRef, RepositorySpec } from '../../common/types';
import { parseS3Url, repositorySpec } from '../../config/conveyor';
import { buildTestRpm, otherSigningKey, publishLogged, testSigningKey } from '../helpers/packages';
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
  /** Keys of every GetObject the S3 client sent. */
  const gets: string[] = [];

  beforeAll(async () => {
    const config = testConfig([{ name: 'acme/tally', cloneUrl: '/nonexistent', steps: { package: 'true' } }]);
    s3 = (await awsFor(config)).s3;
    s3.middlewareStack.add(
      (next, context) => (args) => {
        if (context.commandName === 'GetObjectCommand') gets.push((args.input as { Key: string }).Key);
        return next(args);
      },
      { step: 'initialize', name: 'recordGets' },
    );
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
  async function packaged(build: number, name = 'tally'): Promise<{ ref: ArtifactRef; file: string }> {
    const ctx = { repository: spec, branch: 'main', sha: COMMIT, build };
    const built = await buildTestRpm(
      { name, version: '2.3.0', release: String(build) },
      { s3, bucket: artifactsBucket, distro: 'el9', dir: tempDir('sign-build') },
    );
    const k = packageKey('', ctx, 'el9', built.file);
    const stored = await storeObject(s3, artifactsBucket, k, { file: built.path }, { owner: identityMetadata(ctx) });
    const ref: ArtifactRef = {
      key: k,
      sha256: stored.sha256,
      size: stored.size,
      name,
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

  const staging = (channel: string, artifacts: ArtifactRef[]): PublishPackagesInput => ({
    environment: 'staging',
    channel,
    distro: 'el9',
    distroSpec: { format: 'rpm', arch: 'x86_64' },
    artifacts,
    keepBuilds: 3,
    repository: 'acme/tally',
    packages: ['tally', 'tally-docs'],
  });
  const logged = (input: PublishPackagesInput) => publishLogged(acts, input);
  /** A staging channel's primary, filelists and other, as dnf reads them from repomd.xml. */
  async function metadata(channel: string): Promise<string[]> {
    const root = `yum/el9/${channel}/`;
    const repomd = (await object(buckets.staging, `${root}repodata/repomd.xml`)).toString();
    const hrefs = [...repomd.matchAll(/<location href="([^"]+)"\/>/g)].map((m) => m[1]);
    expect(hrefs).toHaveLength(3);
    return Promise.all(
      hrefs.map(async (h) => zlib.gunzipSync(await object(buckets.staging, `${root}${h}`)).toString()),
    );
  }
  /** Stored facts, changed by `edit`, under a key of their own that the reference then names. */
  async function editedFacts(signed: ArtifactRef, name: string, edit: (o: Record<string, string>) => void) {
    const o = JSON.parse((await object(artifactsBucket, signed.yumIndex!.key)).toString()) as Record<string, string>;
    edit(o);
    const body = Buffer.from(JSON.stringify(o));
    const k = `${signed.key}.${name}.json`;
    await s3.send(new PutObjectCommand({ Bucket: artifactsBucket, Key: k, Body: body }));
    return { ...signed, yumIndex: { key: k, sha256: sha256(body) } };
  }

  it("publishes from signPackages' index facts without downloading the rpm: the index reading it makes", async () => {
    const { ref } = await packaged(12);
    const signed = (await sign(12, [ref])).artifacts[0];
    expect(signed.yumIndex).toEqual({ key: yumIndexKey(signed.key), sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(sha256(await object(artifactsBucket, signed.yumIndex!.key))).toBe(signed.yumIndex!.sha256);

    gets.splice(0);
    const fromFacts = await logged(staging('from-facts', [signed]));
    expect(fromFacts.result.uploaded).toContain(`yum/el9/from-facts/Packages/${ref.file}`);
    expect(gets).toContain(signed.yumIndex!.key);
    expect(gets).not.toContain(signed.key);
    expect(fromFacts.log).not.toContain('itself');

    // The same reference without facts (a run recorded before them): the rpm is downloaded and read.
    gets.splice(0);
    const plain = { ...signed, yumIndex: undefined };
    await acts.publishPackages(staging('read', [plain]));
    expect(gets).toContain(signed.key);
    // The same metadata but for the file's time: the facts give the build time (the same bytes
    // make the same facts), createrepo_c over a downloaded file its download time.
    const untimed = (xml: string) => xml.replace(/<time file="\d+"/, '<time file=""');
    expect((await metadata('from-facts')).map(untimed)).toEqual((await metadata('read')).map(untimed));
    expect(sha256(await object(buckets.staging, `yum/el9/from-facts/Packages/${ref.file}`))).toBe(signed.sha256);

    // A second publish of the same reference finds the file in place: nothing uploaded, nothing read.
    gets.splice(0);
    const again = await acts.publishPackages(staging('from-facts', [signed]));
    expect(again.uploaded).toEqual([]);
    expect(gets).not.toContain(signed.key);
  });

  it("makes every signed rpm's facts of a build at once, each its own", async () => {
    const [a, b] = [await packaged(16), await packaged(16, 'tally-docs')];
    const signed = (await sign(16, [a.ref, b.ref])).artifacts;
    expect(signed.map((x) => x.yumIndex?.key)).toEqual([yumIndexKey(signed[0].key), yumIndexKey(signed[1].key)]);
    for (const x of signed) {
      const facts = JSON.parse((await object(artifactsBucket, x.yumIndex!.key)).toString()) as Record<string, string>;
      expect(facts.sha256).toBe(x.sha256);
      expect(facts.primary).toContain(`<name>${x.name}</name>`);
      expect(facts.primary).toContain(`<location href="Packages/${x.file}"/>`);
    }
    gets.splice(0);
    await acts.publishPackages(staging('facts-two', signed));
    expect(gets).not.toContain(signed[0].key);
    expect(gets).not.toContain(signed[1].key);
    const [primary] = await metadata('facts-two');
    expect(primary).toContain('<name>tally</name>');
    expect(primary).toContain('<name>tally-docs</name>');
  });

  it('reads the rpm itself when its facts changed, could close the document or name another package', async () => {
    const { ref } = await packaged(13);
    const signed = (await sign(13, [ref])).artifacts[0];
    // Facts the reference names (the pointer matches) but that are not fit for an index.
    const injected = await editedFacts(signed, 'injected', (o) => {
      o.primary = o.primary.replace('</package>', '</package><package type="rpm"><name>sudo</name></package>');
    });
    const renamed = await editedFacts(signed, 'renamed', (o) => {
      o.primary = o.primary.replace('<name>tally</name>', '<name>sudo</name>');
    });
    for (const [channel, bad, why] of [
      ['facts-injected', injected, 'its primary fragment is not one well-formed <package> element'],
      ['facts-renamed', renamed, 'its primary fragment lists sudo 2.3.0-13 noarch, but the reference says tally'],
    ] as const) {
      gets.splice(0);
      const read = await logged(staging(channel, [bad]));
      expect(gets).toContain(signed.key);
      expect(read.log).toContain(`its index facts cannot be used (s3://${artifactsBucket}/${bad.yumIndex.key}: ${why}`);
      const [primary] = await metadata(channel);
      expect(primary).not.toContain('sudo');
      expect(primary).toContain('<name>tally</name>');
    }

    // Changed after the reference was made: not the bytes it names.
    await s3.send(new PutObjectCommand({ Bucket: artifactsBucket, Key: signed.yumIndex!.key, Body: '{}' }));
    gets.splice(0);
    const changed = await logged(staging('facts-changed', [signed]));
    expect(gets).toContain(signed.key);
    expect(changed.log).toMatch(
      new RegExp(
        `publish: reading ${signed.key} itself: its index facts cannot be used \\(s3://${artifactsBucket}/` +
          `${signed.yumIndex!.key} has SHA-256 [0-9a-f]{64}, the reference promises ${signed.yumIndex!.sha256}\\)`,
      ),
    );
    // A retry of the signing does not point at them either: they are not the facts of the file.
    expect((await sign(13, [ref])).artifacts[0]).toEqual({ ...signed, yumIndex: undefined });
  });

  it('does not point at facts it did not make: a planted object is left unused', async () => {
    const { ref } = await packaged(14);
    const ours = await fingerprint(key);
    const at = yumIndexKey(signedKey('', ours, ref.key));
    // Planted before the signing by a builder, with metadata that names the build: facts that
    // would add a capability the rpm does not provide.
    const body = JSON.stringify({ format: 'conveyor-yum-index/1', primary: '<rpm:entry name="sudo"/>' });
    await s3.send(
      new PutObjectCommand({
        Bucket: artifactsBucket,
        Key: at,
        Body: body,
        Metadata: identityMetadata({ repository: spec, branch: 'main', sha: COMMIT, build: 14 }),
      }),
    );
    const signed = (await sign(14, [ref])).artifacts[0];
    expect(signed.signer).toBe(ours);
    expect(signed.yumIndex).toBeUndefined();
    expect((await object(artifactsBucket, at)).toString()).toBe(body);
    gets.splice(0);
    await acts.publishPackages(staging('facts-planted', [signed]));
    expect(gets).toContain(signed.key);
    expect((await metadata('facts-planted'))[0]).not.toContain('sudo');
  });
});
