// "Never break a client" and "Release files users expect" (issue 13), proven with the real
// clients: apt-get, apt-cache, apt-file, dnf, gpgv and xz read what the publisher wrote to the
// test stack's S3 endpoint over HTTP. Each case here failed on the publisher before issue 13
// (see the reproductions): a client two generations back, a lost state file, a storage
// prefix, rpm-style arch names on a deb distro, an artifact retention drops at once, write-once
// objects written without a precondition, a Release without expiry, uploads over 5 GB.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  DeleteObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
  type ServiceInputTypes,
} from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import {
  createRepositoryActivities,
  type PublishPackagesInput,
  type RepositoryActivities,
  type RepositoryDeps,
} from '../../activities/repository';
import { createRepoStore } from '../../activities/repository/repo-store';
import { runChecked, runProcess } from '../../activities/exec/process';
import { createOrchestratorActivities } from '../../activities';
import { createAwsClients } from '../../activities/storage/s3';
import type { ArtifactRef } from '../../common/types';
import { parseS3Url, repositorySpec } from '../../config/conveyor';
import { buildTestDeb, buildTestRpm, testSigningKey, type ArtifactTarget } from '../helpers/packages';
import { aptClient, dnfClient } from '../helpers/readers';
import { awsFor, clientFor, tempDir, testConfig, testEnv } from '../helpers/stack';

const sha256 = (b: Buffer | string) => crypto.createHash('sha256').update(b).digest('hex');
const sha256File = (f: string) => sha256(fs.readFileSync(f));

describe('repositories never break a client, and carry what users of Debian archives expect', () => {
  let s3: S3Client;
  let bucket: string;
  let productionBucket: string;
  let artifactsBucket: string;
  let http: string;
  let key: string;
  let acts: RepositoryActivities;
  let target: ArtifactTarget;
  let rpmTarget: ArtifactTarget;

  const make = (more: Partial<RepositoryDeps> = {}) =>
    createRepositoryActivities({
      s3,
      artifactsBucket,
      buckets: { staging: bucket, production: productionBucket },
      signingKey: () => key,
      workDir: tempDir('clients-work'),
      ...more,
    });
  const get = async (k: string, base = http) => {
    const res = await fetch(`${base}/${k}`);
    return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
  };
  const deb = (channel: string, artifacts: ArtifactRef[], keepBuilds = 5): PublishPackagesInput => ({
    environment: 'staging',
    channel,
    distro: 'bookworm',
    distroSpec: { format: 'deb', codename: 'bookworm', arch: 'amd64' },
    artifacts,
    keepBuilds,
    repository: 'acme/tests',
    packages: [...new Set(['tests', ...artifacts.map((a) => a.name)])],
  });
  const rpm = (channel: string, artifacts: ArtifactRef[], keepBuilds = 5): PublishPackagesInput => ({
    environment: 'staging',
    channel,
    distro: 'el9',
    distroSpec: { format: 'rpm', arch: 'x86_64' },
    artifacts,
    keepBuilds,
    repository: 'acme/tests',
    packages: [...new Set(['tests', ...artifacts.map((a) => a.name)])],
  });
  const apt = (name: string, suite: string, o: { arch?: string; contents?: boolean; base?: string } = {}) =>
    aptClient(tempDir(name), `${o.base ?? http}/apt`, suite, `${o.base ?? http}/keys/conveyor.asc`, o);
  const failureOf = async (p: Promise<unknown>) => {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ApplicationFailure);
    return err as ApplicationFailure;
  };

  beforeAll(async () => {
    const config = testConfig([]);
    s3 = (await awsFor(config)).s3;
    artifactsBucket = parseS3Url(config.storage.artifacts).bucket;
    bucket = parseS3Url(config.storage.staging).bucket;
    productionBucket = parseS3Url(config.storage.production).bucket;
    http = `${testEnv().aws}/${bucket}`;
    key = await testSigningKey();
    acts = make();
    target = { s3, bucket: artifactsBucket, distro: 'bookworm', dir: tempDir('clients-deb') };
    rpmTarget = { s3, bucket: artifactsBucket, distro: 'el9', dir: tempDir('clients-rpm') };
  });

  describe('never break a client', () => {
    it('an apt client that updated two generations back still downloads its version, by hash and from the pool', async () => {
      const builds = await Promise.all(
        ['1.0-1', '1.0-2', '1.0-3'].map((version) => buildTestDeb({ name: 'omega', version, arch: 'amd64' }, target)),
      );
      await acts.publishPackages(deb('gens', [builds[0]], 1));
      const old = await apt('apt-gens', 'bookworm-gens');
      expect((await old.update()).exitCode).toBe(0);
      const oldInRelease = (await get('apt/dists/bookworm-gens/InRelease')).body.toString('utf8');
      // Two more generations, each dropping the previous build (keepBuilds 1).
      await acts.publishPackages(deb('gens', [builds[1]], 1));
      await acts.publishPackages(deb('gens', [builds[2]], 1));

      // The client's lists still name 1.0-1: its pool file must be there.
      const dl = await old.download('omega=1.0-1');
      expect(dl.output).not.toMatch(/\b404\s+Not Found/);
      expect(dl.exitCode).toBe(0);
      expect(sha256File(old.file(builds[0].file))).toBe(builds[0].sha256);
      // And a client that fetched that InRelease just before the switches still finds every index it names.
      const sums = oldInRelease.split(/^SHA256:$/m)[1].split(/^(SHA512:|-----BEGIN PGP SIGNATURE)/m)[0];
      const named = [...sums.matchAll(/^ ([0-9a-f]{64}) (\d+) (\S+)$/gm)];
      expect(named.length).toBeGreaterThan(0);
      for (const [, hash, size, file] of named) {
        const byHash = await get(`apt/dists/bookworm-gens/${path.posix.dirname(file)}/by-hash/SHA256/${hash}`);
        expect(`${file} ${byHash.status}`).toBe(`${file} 200`);
        expect(byHash.body.length).toBe(Number(size));
      }
      // A fresh client sees only the newest build.
      const fresh = await apt('apt-gens-fresh', 'bookworm-gens');
      expect((await fresh.update()).exitCode).toBe(0);
      expect((await fresh.download('omega=1.0-1')).exitCode).not.toBe(0);
      expect((await fresh.download('omega=1.0-3')).exitCode).toBe(0);
    });

    it('a dnf client with cached metadata from an earlier generation still downloads', async () => {
      const builds = [];
      for (const release of ['1', '2', '3']) {
        builds.push(await buildTestRpm({ name: 'omega', version: '1.0', release }, rpmTarget));
      }
      await acts.publishPackages(rpm('gens', [builds[0]], 1));
      const dnf = dnfClient(tempDir('dnf-gens'), {
        baseUrl: `${http}/yum/el9/gens`,
        keyUrl: `${http}/keys/conveyor.asc`,
        metadataExpire: '1d',
      });
      expect((await dnf.makecache()).exitCode).toBe(0);
      await acts.publishPackages(rpm('gens', [builds[1]], 1));
      await acts.publishPackages(rpm('gens', [builds[2]], 1));
      // Its metadata is a day fresh, so dnf does not refetch it: only the old metadata names 1.0-1.
      const dl = await dnf.download('omega-1.0-1');
      expect(dl.exitCode).toBe(0);
      expect(fs.existsSync(dnf.file(builds[0].file))).toBe(true);
    });

    it('refuses to publish from a lost state while the index is live: no package or architecture vanishes', async () => {
      const amd = await buildTestDeb({ name: 'sigma', version: '1.0-1', arch: 'amd64' }, target);
      const armTarget = { ...target, distro: 'bookworm-arm' };
      const arm = await buildTestDeb({ name: 'sigma', version: '1.0-1', arch: 'arm64' }, armTarget);
      const armInput = (artifacts: ArtifactRef[]): PublishPackagesInput => ({
        ...deb('lost', artifacts),
        distro: 'bookworm-arm',
        distroSpec: { format: 'deb', codename: 'bookworm', arch: 'arm64' },
      });
      await acts.publishPackages(deb('lost', [amd]));
      await acts.publishPackages(armInput([arm]));
      const stateKey = 'conveyor-state/apt/bookworm-lost.json';
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: stateKey }));

      const next = await buildTestDeb({ name: 'sigma', version: '1.0-2', arch: 'amd64' }, target);
      const f = await failureOf(acts.publishPackages(deb('lost', [next])));
      expect(f.type).toBe('RepositoryStateMissing');
      expect(f.nonRetryable).toBe(true);
      expect(f.message).toContain(`s3://${bucket}/${stateKey} (the repository state) is missing`);
      expect(f.message).toContain('Restore the state object');

      const release = (await get('apt/dists/bookworm-lost/Release')).body.toString();
      expect(release).toMatch(/^Architectures: amd64 arm64$/m);
      for (const [arch, pkg] of [
        ['amd64', amd],
        ['arm64', arm],
      ] as const) {
        const client = await apt(`apt-lost-${arch}`, 'bookworm-lost', { arch });
        expect((await client.update()).exitCode).toBe(0);
        expect((await client.download(`sigma=1.0-1`)).exitCode).toBe(0);
        expect(sha256File(client.file(pkg.file))).toBe(pkg.sha256);
      }
      // YUM: the same refusal.
      const r = await buildTestRpm({ name: 'sigma', version: '1.0', release: '1' }, rpmTarget);
      await acts.publishPackages(rpm('lost', [r]));
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'conveyor-state/yum/el9/lost/state.json' }));
      const r2 = await buildTestRpm({ name: 'sigma', version: '1.0', release: '2' }, rpmTarget);
      const g = await failureOf(acts.publishPackages(rpm('lost', [r2])));
      expect(g.type).toBe('RepositoryStateMissing');
      expect((await get(`yum/el9/lost/Packages/${r.file}`)).status).toBe(200);
    });

    it('honours a storage prefix end to end (s3://bucket/prefix): apt-get and dnf read under it', async () => {
      // Through the real config loader and the orchestrator's wiring, as a deployment configures it.
      const config = testConfig([{ name: 'acme/tests', cloneUrl: '/dev/null', steps: {} }], {
        storage: {
          artifacts: `s3://${artifactsBucket}`,
          staging: `s3://${bucket}/mirror/conveyor`,
          production: `s3://${productionBucket}`,
        },
      });
      const client = await clientFor(config);
      try {
        const orchestrator = createOrchestratorActivities({ config, aws: createAwsClients(config, {}), client });
        const repo = config.repositories[0];
        const spec = repositorySpec(config, repo, repo.branches[0]);
        expect(spec.publicUrls.staging).toBe(`${testEnv().aws}/${bucket}/mirror/conveyor`);
        const d = await buildTestDeb({ name: 'prefixed', version: '1.0-1', arch: 'all' }, target);
        const r = await buildTestRpm({ name: 'prefixed', version: '1.0', release: '1' }, rpmTarget);
        await orchestrator.publishPackages(deb('prefix', [d]));
        await orchestrator.publishPackages(rpm('prefix', [r]));
        // Nothing at the bucket root.
        expect((await get('apt/dists/bookworm-prefix/InRelease')).status).not.toBe(200);
        expect((await get('mirror/conveyor/apt/dists/bookworm-prefix/InRelease')).status).toBe(200);

        const base = spec.publicUrls.staging;
        const a = await apt('apt-prefix', 'bookworm-prefix', { base });
        expect((await a.update()).exitCode).toBe(0);
        expect((await a.download('prefixed=1.0-1')).exitCode).toBe(0);
        expect(sha256File(a.file(d.file))).toBe(d.sha256);
        const dnf = dnfClient(tempDir('dnf-prefix'), {
          baseUrl: `${base}/yum/el9/prefix`,
          keyUrl: `${base}/keys/conveyor.asc`,
        });
        expect((await dnf.makecache()).exitCode).toBe(0);
        expect((await dnf.download('prefixed-1.0-1')).exitCode).toBe(0);
        // The docs site too: under the prefix, where the public URL points.
        const page = '<html><body>prefixed docs</body></html>\n';
        const pageKey = `docs-build/${crypto.randomUUID()}/index.html`;
        await s3.send(new PutObjectCommand({ Bucket: artifactsBucket, Key: pageKey, Body: page }));
        const manifest = JSON.stringify({
          version: '1.0-1',
          files: [{ path: 'index.html', key: pageKey, sha256: sha256(page), size: Buffer.byteLength(page) }],
        });
        const manifestKey = `docs-build/${crypto.randomUUID()}/manifest.json`;
        await s3.send(new PutObjectCommand({ Bucket: artifactsBucket, Key: manifestKey, Body: manifest }));
        const docs = await orchestrator.publishDocs({
          environment: 'staging',
          repository: 'acme/tests',
          channel: 'prefix',
          docs: { manifestKey, sha256: sha256(manifest), files: 1, version: '1.0-1' },
        });
        const site = await fetch(`${base}/${docs.sitePath}index.html`);
        expect(site.status).toBe(200);
        expect(await site.text()).toBe(page);
        expect((await get(`${docs.sitePath}index.html`)).status).not.toBe(200);
        // The state is under the prefix too: a second publish of the same input changes nothing.
        expect(await orchestrator.publishPackages(deb('prefix', [d]))).toMatchObject({ changed: false });
      } finally {
        await client.connection.close();
      }
    });

    it('a deb distro configured with x86_64/aarch64 gets Debian names; arch-all packages reach amd64 clients', async () => {
      const config = testConfig(
        [],
        {},
        {
          deb: { format: 'deb', codename: 'bookworm', arch: 'x86_64' },
          arm: { format: 'deb', codename: 'bookworm', arch: 'aarch64' },
          rpm: { format: 'rpm', arch: 'x86_64' },
        },
      );
      const spec = (prefix: string) => Object.entries(config.distros).find(([n]) => n.startsWith(`${prefix}-`))![1];
      expect(spec('deb').arch).toBe('amd64');
      expect(spec('arm').arch).toBe('arm64');
      expect(spec('rpm').arch).toBe('x86_64');

      const all = await buildTestDeb({ name: 'archall', version: '1.0-1', arch: 'all' }, target);
      await acts.publishPackages({ ...deb('archnames', [all]), distroSpec: spec('deb') });
      // A run recorded before the normalisation carries x86_64 in its spec: the publisher maps it too.
      const more = await buildTestDeb({ name: 'archall2', version: '1.0-1', arch: 'all' }, target);
      await acts.publishPackages({
        ...deb('archnames', [more]),
        distroSpec: { format: 'deb', codename: 'bookworm', arch: 'x86_64' },
      });
      const release = (await get('apt/dists/bookworm-archnames/Release')).body.toString();
      expect(release).toMatch(/^Architectures: amd64$/m);
      expect(release).not.toContain('binary-x86_64');
      const client = await apt('apt-archnames', 'bookworm-archnames');
      expect((await client.update()).exitCode).toBe(0);
      for (const a of [all, more]) {
        expect((await client.download(`${a.name}=${a.version}`)).exitCode).toBe(0);
        expect(sha256File(client.file(a.file))).toBe(a.sha256);
      }
    });

    it('reports an incoming artifact that retention drops at once, instead of a silent success', async () => {
      const builds = await Promise.all(
        ['2.0-3', '2.0-4', '2.0-5'].map((version) => buildTestDeb({ name: 'stale', version, arch: 'amd64' }, target)),
      );
      await acts.publishPackages(deb('dropped', [builds[1], builds[2]], 2));
      const r = await acts.publishPackages(deb('dropped', [builds[0]], 2));
      expect(r.dropped).toEqual([
        {
          name: 'stale',
          version: '2.0-3',
          arch: 'amd64',
          key: builds[0].key,
          reason:
            'older than the 2 newest builds of stale (amd64) kept in apt bookworm-dropped (staging, dropped) ' +
            '(retention.keepBuilds): not published',
        },
      ]);
      const client = await apt('apt-dropped', 'bookworm-dropped');
      expect((await client.update()).exitCode).toBe(0);
      expect((await client.download('stale=2.0-3')).exitCode).not.toBe(0);
    });

    it('writes pool and by-hash files with IfNoneMatch, and adopts the same bytes already there', async () => {
      // A client of its own whose requests are recorded before they are sent.
      const config = testConfig([]);
      const recording = createAwsClients(config, {}).s3;
      const puts: ServiceInputTypes[] = [];
      recording.middlewareStack.add(
        (next, context) => async (args) => {
          // The pool file is a server-side copy of the artifact: written once the same way.
          if (context.commandName === 'PutObjectCommand' || context.commandName === 'CopyObjectCommand')
            puts.push(args.input);
          return next(args);
        },
        { step: 'initialize', name: 'recordPuts' },
      );
      const recorded = createRepositoryActivities({
        s3: recording,
        artifactsBucket,
        buckets: { staging: bucket, production: productionBucket },
        signingKey: () => key,
        workDir: tempDir('clients-once'),
      });
      const d = await buildTestDeb({ name: 'once', version: '1.0-1', arch: 'amd64' }, target);
      await recorded.publishPackages(deb('once', [d]));
      const byKey = new Map(puts.map((p) => [(p as { Key: string }).Key, p as { IfNoneMatch?: string }]));
      const pool = 'apt/pool/once/bookworm/once/once_1.0-1_amd64.deb';
      expect(byKey.get(pool)?.IfNoneMatch).toBe('*');
      const hashed = [...byKey.keys()].filter((k) => k.includes('/by-hash/'));
      expect(hashed.length).toBeGreaterThan(0);
      for (const k of hashed) expect(byKey.get(k)?.IfNoneMatch).toBe('*');
      // Mutable names are not write-once.
      expect(byKey.get('apt/dists/bookworm-once/InRelease')?.IfNoneMatch).toBeUndefined();

      const store = createRepoStore(s3, bucket);
      const body = Buffer.from('write once\n');
      const md5 = crypto.createHash('md5').update(body).digest('hex');
      const opts = { contentType: 'text/plain', immutable: true, md5 };
      expect(await store.putOnce('apt/pool/once/x', body, opts)).toBe('written');
      expect(await store.putOnce('apt/pool/once/x', body, opts)).toBe('adopted');
      await expect(store.putOnce('apt/pool/once/x', Buffer.from('other bytes\n'), opts)).rejects.toThrow(
        /is write-once and already holds other bytes/,
      );
      expect((await get('apt/pool/once/x')).body.equals(body)).toBe(true);
    });
  });

  describe('Release files users expect', () => {
    it('Release has Origin/Label per environment, Valid-Until, SHA512; Packages.xz and Contents beside it', async () => {
      const tool = await buildTestDeb({ name: 'findme', version: '1.0-1', arch: 'amd64' }, target);
      const before = Date.now();
      await acts.publishPackages(deb('release', [tool]));
      await acts.publishPackages({ ...deb('release', [tool]), environment: 'production' });
      const release = (await get('apt/dists/bookworm-release/Release')).body.toString();
      expect(release).toMatch(/^Origin: Conveyor$/m);
      expect(release).toMatch(/^Label: Conveyor staging$/m);
      const production = (await get('apt/dists/bookworm-release/Release', `${testEnv().aws}/${productionBucket}`)).body;
      expect(production.toString()).toMatch(/^Label: Conveyor production$/m);
      // Valid-Until: 7 days after Date by default.
      const date = Date.parse(/^Date: (.*)$/m.exec(release)![1]);
      const until = Date.parse(/^Valid-Until: (.*)$/m.exec(release)![1]);
      expect(date).toBeGreaterThanOrEqual(before - 1000);
      expect(until - date).toBe(7 * 86_400_000);

      // gpgv verifies InRelease against the published key, and its SHA512 sums match the files.
      const dir = tempDir('gpgv');
      fs.writeFileSync(path.join(dir, 'key.asc'), (await get('keys/conveyor.asc')).body);
      await runChecked('gpg', [
        '--batch',
        '--yes',
        '--dearmor',
        '-o',
        path.join(dir, 'key.gpg'),
        path.join(dir, 'key.asc'),
      ]);
      fs.writeFileSync(path.join(dir, 'InRelease'), (await get('apt/dists/bookworm-release/InRelease')).body);
      const v = await runProcess('gpgv', ['--keyring', path.join(dir, 'key.gpg'), path.join(dir, 'InRelease')]);
      expect(v.exitCode).toBe(0);
      const sha512 = release.split(/^SHA512:$/m)[1];
      const sums = [...sha512.matchAll(/^ ([0-9a-f]{128}) (\d+) (\S+)$/gm)].map(([, h, size, file]) => ({
        h,
        size,
        file,
      }));
      expect(sums.map((x) => x.file)).toEqual(
        expect.arrayContaining([
          'main/binary-amd64/Packages',
          'main/binary-amd64/Packages.gz',
          'main/binary-amd64/Packages.xz',
          'main/Contents-amd64.gz',
        ]),
      );
      for (const x of sums) {
        const body = (await get(`apt/dists/bookworm-release/${x.file}`)).body;
        expect(crypto.createHash('sha512').update(body).digest('hex')).toBe(x.h);
        // apt asks for the strongest hash a Release lists: the by-hash copy under SHA512 exists.
        const dirname = path.posix.dirname(x.file);
        expect((await get(`apt/dists/bookworm-release/${dirname}/by-hash/SHA512/${x.h}`)).status).toBe(200);
      }
      // Packages.xz is xz (xz-utils reads it) of Packages.
      fs.writeFileSync(
        path.join(dir, 'Packages.xz'),
        (await get('apt/dists/bookworm-release/main/binary-amd64/Packages.xz')).body,
      );
      const unxz = await runChecked('xz', ['-dc', path.join(dir, 'Packages.xz')]);
      expect(unxz).toBe((await get('apt/dists/bookworm-release/main/binary-amd64/Packages')).body.toString());

      // apt-get fetches the xz index (by its SHA512 by-hash name: the strongest hash listed) and Contents.
      const xzSum = sums.find((x) => x.file === 'main/binary-amd64/Packages.xz')!.h;
      const contentsSum = sums.find((x) => x.file === 'main/Contents-amd64.gz')!.h;
      const client = await apt('apt-release', 'bookworm-release', { contents: true });
      const up = await client.apt(['-o', 'Debug::Acquire::http=true', 'update']);
      expect(up.exitCode).toBe(0);
      expect(up.output).not.toMatch(/^(W|E):/m);
      expect(up.output).toContain(
        `GET /${bucket}/apt/dists/bookworm-release/main/binary-amd64/by-hash/SHA512/${xzSum} `,
      );
      expect(up.output).toContain(`GET /${bucket}/apt/dists/bookworm-release/main/by-hash/SHA512/${contentsSum} `);
      expect((await client.download('findme=1.0-1')).exitCode).toBe(0);
      const policy = await client.policy();
      expect(policy.output).toContain('o=Conveyor,a=bookworm-release,n=bookworm-release,l=Conveyor staging,c=main');
      // apt-file finds which package ships a file, from Contents-amd64.
      const search = await client.fileSearch('/usr/share/findme/VERSION');
      expect(search.output.trim()).toBe('findme: /usr/share/findme/VERSION');
      expect(search.exitCode).toBe(0);
    });

    it('a client refuses an expired Release; the re-sign renews it in place and the client accepts it again', async () => {
      const short = make({ validDays: { staging: 3 / 86_400 } }); // three seconds
      const d = await buildTestDeb({ name: 'expiring', version: '1.0-1', arch: 'amd64' }, target);
      await short.publishPackages(deb('expiry', [d]));
      const before = (await get('apt/dists/bookworm-expiry/Release')).body.toString();
      await new Promise((r) => setTimeout(r, 4500));
      const client = await apt('apt-expiry', 'bookworm-expiry');
      const refused = await client.update();
      expect(refused.exitCode).not.toBe(0);
      expect(refused.output).toMatch(/is expired/);

      const r = await acts.resignRepository({
        environment: 'staging',
        channel: 'expiry',
        distro: 'bookworm',
        distroSpec: { format: 'deb', codename: 'bookworm', arch: 'amd64' },
      });
      expect(r.resigned).toBe(true);
      expect(Date.parse(r.validUntil!) - Date.now()).toBeGreaterThan(6 * 86_400_000);
      const after = (await get('apt/dists/bookworm-expiry/Release')).body.toString();
      // Same files, same sums: only Date and Valid-Until changed.
      const strip = (t: string) => t.replace(/^(Date|Valid-Until): .*\n/gm, '');
      expect(strip(after)).toBe(strip(before));
      expect(after).not.toBe(before);
      const ok = await client.update();
      expect(ok.exitCode).toBe(0);
      expect((await client.download('expiring=1.0-1')).exitCode).toBe(0);
      // The state records the new signed files: the next publish of the same input changes nothing.
      expect(await acts.publishPackages(deb('expiry', [d]))).toMatchObject({ changed: false });
      // YUM has no expiry to renew.
      expect(
        await acts.resignRepository({
          environment: 'staging',
          channel: 'expiry',
          distro: 'el9',
          distroSpec: { format: 'rpm', arch: 'x86_64' },
        }),
      ).toMatchObject({ resigned: false });
    });
  });

  it('uploads a package above the multipart threshold in parts; apt-get downloads the exact bytes', async () => {
    const big = make({ multipartThresholdBytes: 8 * 1024 * 1024 });
    const d = await buildTestDeb(
      { name: 'bulky', version: '1.0-1', arch: 'amd64', payloadBytes: 13 * 1024 * 1024 },
      target,
    );
    expect(d.size).toBeGreaterThan(8 * 1024 * 1024);
    const r = await big.publishPackages(deb('multipart', [d]));
    const pool = 'apt/pool/multipart/bookworm/bulky/bulky_1.0-1_amd64.deb';
    expect(r.uploaded).toContain(pool);
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: pool }));
    // A multipart object's ETag is `<md5 of part md5s>-<parts>`.
    expect(head.ETag).toMatch(/-\d+"?$/);
    expect(head.ContentLength).toBe(d.size);
    const client = await apt('apt-multipart', 'bookworm-multipart');
    expect((await client.update()).exitCode).toBe(0);
    expect((await client.download('bulky=1.0-1')).exitCode).toBe(0);
    expect(sha256File(client.file(d.file))).toBe(d.sha256);
    // Idempotent: the multipart object is recognised by size, nothing is uploaded again.
    expect(await big.publishPackages(deb('multipart', [d]))).toMatchObject({ changed: false });
    // And a write-once multipart upload onto an existing key is refused by the store, not overwritten.
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'apt/pool/multipart/taken', Body: 'x' }));
    const store = createRepoStore(s3, bucket, '', { multipartThresholdBytes: 8 * 1024 * 1024 });
    await expect(
      store.putOnce('apt/pool/multipart/taken', { file: d.path }, { contentType: 'x', immutable: true, md5: '' }),
    ).rejects.toThrow(/write-once/);
  });
});
