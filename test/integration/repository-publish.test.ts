// The publish engine against the test stack's S3 endpoint, read back over HTTP the way clients
// read it: incremental uploads, idempotency, retention, generations of by-hash/repodata files,
// listings past 1,000 keys, crashes mid-publish (cancelled through MockActivityEnvironment) and
// the failures a workflow branches on. apt-get and dnf themselves are in repository-apt/-yum.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import {
  createRepositoryActivities,
  generateSigningKey,
  publicKeyOf,
  type PublishPackagesInput,
  type RepositoryActivities,
} from '../../activities/repository';
import { runChecked } from '../../activities/exec/process';
import { createRepoStore } from '../../activities/repository/repo-store';
import type { RepositoryState } from '../../activities/repository/repository-state';
import { mapLimit } from '../../activities/repository/s3-objects';
import { loadState, without } from '../../activities/repository/state-shards';
import type { ArtifactRef } from '../../common/types';
import type { ConveyorConfig } from '../../config/conveyor';
import {
  buildTestDeb,
  buildTestRpm,
  craftDeb,
  testPublisher,
  testSigningKey,
  type ArtifactTarget,
} from '../helpers/packages';
import { aptClient, dnfClient } from '../helpers/readers';
import { awsFor, dyingS3, tempDir, testConfig, testEnv, uid } from '../helpers/stack';

// The SDK logs every failed activity as a warning; these failures are the point of the tests.
const quiet = new DefaultLogger('ERROR');
const sha256 = (b: Buffer | string) => crypto.createHash('sha256').update(b).digest('hex');

describe('repository publishing: increments, retention, generations, crashes', () => {
  let s3: S3Client;
  let bucket: string;
  let http: string;
  let acts: RepositoryActivities;
  let target: ArtifactTarget;
  let rpmTarget: ArtifactTarget;
  let artifactsBucket: string;
  let config: ConveyorConfig;
  // The publisher's clock: retention is by time, so tests move it past the window (24 h default).
  // Each test starts it three days back: apt refuses a Release dated in the future.
  let clock = Date.now();
  const later = (hours: number) => (clock += hours * 3_600_000);
  beforeEach(() => {
    clock = Date.now() - 72 * 3_600_000;
  });

  const get = async (key: string) => {
    const res = await fetch(`${http}/${key}`);
    return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
  };
  // GET, not HEAD: moto answers an anonymous HEAD with 403 even where GET is allowed.
  const exists = async (key: string) => (await get(key)).status === 200;

  // One repository (acme/tests) owns every name these tests publish, unless a test says otherwise.
  const deb = (
    channel: string,
    artifacts: ArtifactRef[],
    keepBuilds = 5,
    repository = 'acme/tests',
  ): PublishPackagesInput => ({
    environment: 'staging',
    channel,
    distro: 'bookworm',
    distroSpec: { format: 'deb', codename: 'bookworm', arch: 'amd64' },
    artifacts,
    keepBuilds,
    repository,
    packages: [...new Set(['tests', ...artifacts.map((a) => a.name)])],
  });
  const rpm = (
    channel: string,
    artifacts: ArtifactRef[],
    keepBuilds = 5,
    repository = 'acme/tests',
  ): PublishPackagesInput => ({
    environment: 'staging',
    channel,
    distro: 'el9',
    distroSpec: { format: 'rpm', arch: 'x86_64' },
    artifacts,
    keepBuilds,
    repository,
    packages: [...new Set(['tests', ...artifacts.map((a) => a.name)])],
  });

  /** What an apt client with Acquire-By-Hash can reach from the live InRelease, checked byte for
   * byte: every index it names, by hash, and every pool file those indexes name. */
  async function aptView(suite: string, arch = 'amd64'): Promise<string[]> {
    const inRelease = (await get(`apt/dists/${suite}/InRelease`)).body.toString('utf8');
    const sums = inRelease.split(/^SHA256:$/m)[1].split(/^-----BEGIN PGP SIGNATURE/m)[0];
    let packages = '';
    for (const [, hash, size, file] of sums.matchAll(/^ ([0-9a-f]{64}) (\d+) (\S+)$/gm)) {
      const byHash = await get(`apt/dists/${suite}/${path.posix.dirname(file)}/by-hash/SHA256/${hash}`);
      expect(byHash.status).toBe(200);
      expect(byHash.body.length).toBe(Number(size));
      expect(sha256(byHash.body)).toBe(hash);
      if (file === `main/binary-${arch}/Packages`) packages = byHash.body.toString('utf8');
    }
    const listed: string[] = [];
    for (const stanza of packages.split('\n\n').filter((x) => x.trim())) {
      const field = (n: string) => new RegExp(`^${n}: (.*)$`, 'm').exec(stanza)![1];
      const pool = await get(`apt/${field('Filename')}`);
      expect(pool.status).toBe(200);
      expect(sha256(pool.body)).toBe(field('SHA256'));
      listed.push(`${field('Package')} ${field('Version')}`);
    }
    return listed.sort();
  }

  /** The same for dnf: repomd.xml → its metadata files → the rpms primary.xml names. */
  async function yumView(repo: string): Promise<string[]> {
    const repomd = (await get(`${repo}/repodata/repomd.xml`)).body.toString('utf8');
    const listed: string[] = [];
    for (const [, data] of repomd.matchAll(/<data type="\w+">([\s\S]*?)<\/data>/g)) {
      const href = /<location href="([^"]+)"/.exec(data)![1];
      const file = await get(`${repo}/${href}`);
      expect(file.status).toBe(200);
      expect(sha256(file.body)).toBe(/<checksum type="sha256">([0-9a-f]+)</.exec(data)![1]);
      if (href.endsWith('primary.xml.gz')) {
        const primary = (await import('node:zlib')).gunzipSync(file.body).toString('utf8');
        for (const [, pkg] of primary.matchAll(/<package type="rpm">([\s\S]*?)<\/package>/g)) {
          const loc = /<location href="([^"]+)"/.exec(pkg)![1];
          const rpmFile = await get(`${repo}/${loc}`);
          expect(sha256(rpmFile.body)).toBe(/<checksum type="sha256" pkgid="YES">([0-9a-f]+)</.exec(pkg)![1]);
          const v = /<version epoch="\d+" ver="([^"]+)" rel="([^"]+)"\/>/.exec(pkg)!;
          listed.push(`${/<name>([^<]+)</.exec(pkg)![1]} ${v[1]}-${v[2]}`);
        }
      }
    }
    return listed.sort();
  }

  beforeAll(async () => {
    config = testConfig([]);
    s3 = (await awsFor(config)).s3;
    ({ acts, artifactsBucket, bucket, target } = await testPublisher(config, s3, 'publish', {
      now: () => new Date(clock),
    }));
    http = `${testEnv().aws}/${bucket}`;
    rpmTarget = { s3, bucket: artifactsBucket, distro: 'el9', dir: tempDir('publish-rpm') };
  });

  it('uploads only the new package and the indexes; the same input again changes nothing', async () => {
    const a = await buildTestDeb({ name: 'alpha', version: '1.0-1', arch: 'all' }, target);
    const b = await buildTestDeb({ name: 'beta', version: '2.0-1', arch: 'amd64' }, target);
    const first = await acts.publishPackages(deb('incr', [a]));
    expect(first.uploaded).toContain('keys/conveyor.asc');
    expect(await aptView('bookworm-incr')).toEqual(['alpha 1.0-1']);

    const second = await acts.publishPackages(deb('incr', [a, b]));
    const pool = second.uploaded.filter((k) => k.startsWith('apt/pool/'));
    expect(pool).toEqual(['apt/pool/incr/bookworm/beta/beta_2.0-1_amd64.deb']);
    // The state's shards: beta's, and the directory that names it (content-named, write-once).
    const shards = second.uploaded.filter((k) => k.startsWith('conveyor-state/apt/bookworm-incr.shards/'));
    expect(shards.map((k) => k.replace(/[0-9a-f]{64}/, 'H'))).toEqual(
      expect.arrayContaining(['conveyor-state/apt/bookworm-incr.shards/n/H.json']),
    );
    expect(shards.length).toBeLessThanOrEqual(3);
    const rest = second.uploaded.filter((k) => !pool.includes(k) && !shards.includes(k));
    const stateKeys = [
      'conveyor-state/apt/bookworm-incr.json',
      'conveyor-state/apt/bookworm-incr.generations/00000002.json',
    ];
    expect(rest.every((k) => second.indexKeys.includes(k) || stateKeys.includes(k))).toBe(true);
    // The signed index is written after everything it names, InRelease last of all; then the
    // state (its shards, then its head) and the generation's snapshot.
    expect(second.uploaded.indexOf(shards[0])).toBeGreaterThan(
      second.uploaded.indexOf('apt/dists/bookworm-incr/InRelease'),
    );
    expect(rest.slice(-5)).toEqual([
      'apt/dists/bookworm-incr/Release',
      'apt/dists/bookworm-incr/Release.gpg',
      'apt/dists/bookworm-incr/InRelease',
      ...stateKeys,
    ]);
    expect(second.uploaded.indexOf(pool[0])).toBeLessThan(second.uploaded.indexOf('apt/dists/bookworm-incr/Release'));
    expect(await aptView('bookworm-incr')).toEqual(['alpha 1.0-1', 'beta 2.0-1']);

    const third = await acts.publishPackages(deb('incr', [a, b]));
    expect(third).toMatchObject({ changed: false, uploaded: [], removed: [] });
  });

  it('does the same for YUM: one signed rpm and new repodata, then nothing', async () => {
    const a = await buildTestRpm({ name: 'alpha', version: '1.0', release: '1' }, rpmTarget);
    const b = await buildTestRpm({ name: 'beta', version: '2.0', release: '1' }, rpmTarget);
    const first = await acts.publishPackages(rpm('incr', [a]));
    expect(first.repoUrlPath).toBe('yum/el9/incr');
    expect(await yumView('yum/el9/incr')).toEqual(['alpha 1.0-1']);

    const second = await acts.publishPackages(rpm('incr', [a, b]));
    expect(second.uploaded.filter((k) => k.endsWith('.rpm'))).toEqual(['yum/el9/incr/Packages/beta-2.0-1.noarch.rpm']);
    expect(second.uploaded.filter((k) => /repodata\/[0-9a-f]{64}-/.test(k))).toHaveLength(3);
    expect(second.uploaded.filter((k) => !k.includes('.shards/')).slice(-4)).toEqual([
      'yum/el9/incr/repodata/repomd.xml',
      'yum/el9/incr/repodata/repomd.xml.asc',
      'conveyor-state/yum/el9/incr/state.json',
      'conveyor-state/yum/el9/incr/state.generations/00000002.json',
    ]);
    expect(await yumView('yum/el9/incr')).toEqual(['alpha 1.0-1', 'beta 2.0-1']);
    expect(await acts.publishPackages(rpm('incr', [a, b]))).toMatchObject({
      changed: false,
      uploaded: [],
      removed: [],
    });
  });

  it('keeps the newest keepBuilds versions; files of replaced generations stay for the retention window', async () => {
    // 1.0-10 sorts above 1.0-9 as dpkg orders versions, not as strings do.
    const builds = await Promise.all(
      ['1.0-9', '1.0-10', '1.0-11'].map((version) => buildTestDeb({ name: 'gamma', version, arch: 'amd64' }, target)),
    );
    const gens = [];
    for (const b of builds) gens.push(await acts.publishPackages(deb('keep', [b], 2)));
    expect(await aptView('bookworm-keep')).toEqual(['gamma 1.0-10', 'gamma 1.0-11']);
    // Out of the index, but a client holding an older Packages still finds it within the window.
    expect(gens[2].removed).toEqual([]);
    expect(await exists('apt/pool/keep/bookworm/gamma/gamma_1.0-9_amd64.deb')).toBe(true);

    const byHash = (r: { indexKeys: string[] }) => r.indexKeys.filter((k) => k.includes('/by-hash/'));
    // Every generation's indexes are still there…
    for (const g of gens) for (const k of byHash(g)) expect(await exists(k)).toBe(true);
    // …until the window (24 h) has passed since a newer generation replaced them.
    later(25);
    const after = await acts.publishPackages(deb('keep', [builds[2]], 2));
    const live = new Set(byHash(gens[2]));
    const gone = [...byHash(gens[0]), ...byHash(gens[1])].filter((k) => !live.has(k));
    expect(gone.length).toBeGreaterThan(0);
    for (const k of gone) expect(await exists(k)).toBe(false);
    expect(after.removed).toEqual(
      expect.arrayContaining([...gone, 'apt/pool/keep/bookworm/gamma/gamma_1.0-9_amd64.deb']),
    );
    expect(await exists('apt/pool/keep/bookworm/gamma/gamma_1.0-9_amd64.deb')).toBe(false);
    expect(await aptView('bookworm-keep')).toEqual(['gamma 1.0-10', 'gamma 1.0-11']);

    // An older build than those kept is dropped at once, and the result says so.
    const older = await acts.publishPackages(deb('keep', [builds[0]], 2));
    expect(older).toMatchObject({ changed: false });
    expect(older.dropped).toEqual([
      expect.objectContaining({ name: 'gamma', version: '1.0-9', arch: 'amd64', key: builds[0].key }),
    ]);
    expect(older.dropped![0].reason).toContain('older than the 2 newest builds of gamma (amd64)');
  });

  it('applies retention to YUM with rpm version order and keeps replaced repodata for the window', async () => {
    const builds = [];
    for (const release of ['9', '10', '11']) {
      builds.push(await buildTestRpm({ name: 'gamma', version: '1.0', release }, rpmTarget));
    }
    const gens = [];
    for (const b of builds) gens.push(await acts.publishPackages(rpm('keep', [b], 2)));
    expect(await yumView('yum/el9/keep')).toEqual(['gamma 1.0-10', 'gamma 1.0-11']);
    expect(await exists('yum/el9/keep/Packages/gamma-1.0-9.noarch.rpm')).toBe(true);
    const hashed = (r: { indexKeys: string[] }) => r.indexKeys.filter((k) => /[0-9a-f]{64}-/.test(k));
    for (const g of gens) for (const k of hashed(g)) expect(await exists(k)).toBe(true);
    later(25);
    const after = await acts.publishPackages(rpm('keep', [builds[2]], 2));
    expect(after.removed).toContain('yum/el9/keep/Packages/gamma-1.0-9.noarch.rpm');
    for (const k of [...hashed(gens[0]), ...hashed(gens[1])]) expect(await exists(k)).toBe(false);
    for (const k of hashed(gens[2])) expect(await exists(k)).toBe(true);
  });

  it('lists every object past 1,000 keys: strays in the pool are all found and removed', async () => {
    const a = await buildTestDeb({ name: 'delta', version: '1.0-1', arch: 'amd64' }, target);
    await acts.publishPackages(deb('many', [a]));
    const strays = Array.from(
      { length: 1050 },
      (_, i) => `apt/pool/many/bookworm/zz-stray/${String(i).padStart(4, '0')}`,
    );
    await mapLimit(strays, 64, (Key) => s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body: 'x' })));
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'apt/pool/many/' }));
    expect(page.IsTruncated).toBe(true); // the endpoint pages like S3 does

    const r = await acts.publishPackages(deb('many', [a]));
    expect(r.changed).toBe(true);
    expect(r.uploaded).toEqual([]);
    expect(r.removed).toEqual(strays);
    const after = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'apt/pool/many/' }));
    expect(after.Contents?.map((o) => o.Key)).toEqual(['apt/pool/many/bookworm/delta/delta_1.0-1_amd64.deb']);
  });

  it('lists an Architecture: all package in every architecture of a suite shared by two distros', async () => {
    const all = await buildTestDeb({ name: 'docs', version: '3.0-1', arch: 'all' }, target);
    const amd = await buildTestDeb({ name: 'tool', version: '3.0-1', arch: 'amd64' }, target);
    const armTarget = { ...target, distro: 'bookworm-arm' };
    const allOnArm = await buildTestDeb(
      { name: 'docs', version: '3.0-1', arch: 'all', description: 'rebuilt' },
      armTarget,
    );
    const arm = await buildTestDeb({ name: 'tool', version: '3.0-1', arch: 'arm64' }, armTarget);
    await acts.publishPackages(deb('multi', [all, amd]));
    await acts.publishPackages({
      ...deb('multi', [allOnArm, arm]),
      distro: 'bookworm-arm',
      distroSpec: { format: 'deb', codename: 'bookworm', arch: 'arm64' },
    });
    const release = (await get('apt/dists/bookworm-multi/Release')).body.toString();
    expect(release).toMatch(/^Architectures: amd64 arm64$/m);
    expect(await aptView('bookworm-multi', 'amd64')).toEqual(['docs 3.0-1', 'tool 3.0-1']);
    expect(await aptView('bookworm-multi', 'arm64')).toEqual(['docs 3.0-1', 'tool 3.0-1']);
    // The arch-all package built first stays: one suite has one `docs 3.0-1`.
    const arm64 = (await get('apt/dists/bookworm-multi/main/binary-arm64/Packages')).body.toString();
    expect(arm64).toContain(`SHA256: ${all.sha256}`);
    expect(arm64).toContain('Architecture: arm64');
    expect(arm64).not.toContain('Architecture: amd64');
  });

  it('leaves the previous repository intact when cancelled before the switch; the retry finishes', async () => {
    const a = await buildTestDeb({ name: 'epsilon', version: '1.0-1', arch: 'amd64' }, target);
    const b = await buildTestDeb({ name: 'zeta', version: '1.0-1', arch: 'amd64' }, target);
    await acts.publishPackages(deb('crash', [a]));
    const before = await get('apt/dists/bookworm-crash/InRelease');

    // Cancelled when everything but the signed index is written: the worst moment.
    const env = new MockActivityEnvironment(undefined, { logger: quiet });
    const phases: string[] = [];
    env.on('heartbeat', (d: { phase?: string }) => {
      phases.push(d.phase ?? '');
      if (d.phase === 'sign') env.cancel();
    });
    // gpg is killed mid-signature; the activity still reports a cancellation, not a failure.
    await expect(env.run(acts.publishPackages, deb('crash', [a, b]))).rejects.toBeInstanceOf(CancelledFailure);
    expect(phases).toEqual(expect.arrayContaining(['download', 'pool', 'index', 'sign']));
    expect(await exists('apt/pool/crash/bookworm/zeta/zeta_1.0-1_amd64.deb')).toBe(true);
    expect((await get('apt/dists/bookworm-crash/InRelease')).body.equals(before.body)).toBe(true);
    expect(await aptView('bookworm-crash')).toEqual(['epsilon 1.0-1']);

    const retry = await acts.publishPackages(deb('crash', [a, b]));
    // The pool file and the hashed indexes were already in place; only the rest is written.
    expect(retry.uploaded.filter((k) => k.includes('/pool/') || k.includes('/by-hash/'))).toEqual([]);
    expect(await aptView('bookworm-crash')).toEqual(['epsilon 1.0-1', 'zeta 1.0-1']);
  });

  it('finishes after a crash between the switch and the state manifest', async () => {
    const a = await buildTestDeb({ name: 'eta', version: '1.0-1', arch: 'amd64' }, target);
    const b = await buildTestDeb({ name: 'eta', version: '1.0-2', arch: 'amd64' }, target);
    await acts.publishPackages(deb('crash2', [a], 1));
    const stateKey = 'conveyor-state/apt/bookworm-crash2.json';
    const oldState = (await get(stateKey)).body;
    await acts.publishPackages(deb('crash2', [b], 1));
    // Retired, not deleted: clients holding the older index may still fetch it.
    expect(await exists('apt/pool/crash2/bookworm/eta/eta_1.0-1_amd64.deb')).toBe(true);
    // As if the process died right after InRelease: new index live, old manifest, nothing deleted.
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: stateKey, Body: oldState }));
    const retry = await acts.publishPackages(deb('crash2', [b], 1));
    expect(retry.changed).toBe(true);
    expect(retry.uploaded.filter((k) => k.includes('/pool/'))).toEqual([]);
    expect(await aptView('bookworm-crash2')).toEqual(['eta 1.0-2']);
    expect(await acts.publishPackages(deb('crash2', [b], 1))).toMatchObject({ changed: false });
  });

  it("finishes a channel's first publish after a crash between its switch and its state (APT and YUM)", async () => {
    // The same publisher on a client of its own that dies once a signed file has landed: every
    // later write to the state fails, as if the process had been killed right after the switch.
    let switched = false;
    const dying = dyingS3(config, (key) => {
      if (switched && key.startsWith('conveyor-state/')) return `the publisher died before writing ${key}`;
      if (/(\/InRelease|\/repodata\/repomd\.xml(\.asc)?)$/.test(key)) switched = true;
      return undefined;
    });
    const dead = (await testPublisher(config, dying, 'publish-dying', { now: () => new Date(clock) })).acts;
    const a = await buildTestDeb({ name: 'iota', version: '1.0-1', arch: 'amd64' }, target);
    const r = await buildTestRpm({ name: 'kappa', version: '1.0', release: '1' }, rpmTarget);
    for (const [input, index, view, listed] of [
      [deb('first', [a]), 'apt/dists/bookworm-first/InRelease', () => aptView('bookworm-first'), 'iota 1.0-1'],
      [rpm('first', [r]), 'yum/el9/first/repodata/repomd.xml', () => yumView('yum/el9/first'), 'kappa 1.0-1'],
    ] as const) {
      switched = false;
      await expect(dead.publishPackages(input)).rejects.toThrow('the publisher died before writing conveyor-state/');
      expect(await exists(index)).toBe(true);
      // The retry takes the channel's empty state, stored before the switch, and finishes.
      const retry = await acts.publishPackages(input);
      expect(retry.changed).toBe(true);
      expect(await view()).toEqual([listed]);
      expect(await acts.publishPackages(input)).toMatchObject({ changed: false });
    }
  });

  it('reuses an rpm signed before a crash instead of signing it again', async () => {
    const a = await buildTestRpm({ name: 'theta', version: '1.0', release: '1' }, rpmTarget);
    const env = new MockActivityEnvironment(undefined, { logger: quiet });
    env.on('heartbeat', (d: { phase?: string }) => d.phase === 'index' && env.cancel());
    await expect(env.run(acts.publishPackages, rpm('crash', [a]))).rejects.toThrow();
    const signedBefore = (await get('yum/el9/crash/Packages/theta-1.0-1.noarch.rpm')).body;
    expect(signedBefore.length).toBeGreaterThan(0);
    const retry = await acts.publishPackages(rpm('crash', [a]));
    expect(retry.uploaded).not.toContain('yum/el9/crash/Packages/theta-1.0-1.noarch.rpm');
    expect((await get('yum/el9/crash/Packages/theta-1.0-1.noarch.rpm')).body.equals(signedBefore)).toBe(true);
    expect(await yumView('yum/el9/crash')).toEqual(['theta 1.0-1']);
  });

  const failureOf = async (p: Promise<unknown>) => {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ApplicationFailure);
    return err as ApplicationFailure;
  };
  /** The whole state of an APT suite: its head and shards (state-shards.ts). */
  const stateOf = async (key: string): Promise<RepositoryState> => {
    const state = await loadState(createRepoStore(s3, bucket), { stateKey: key, format: 'apt' });
    if (!state) throw new Error(`no state at ${key}`);
    return state;
  };

  describe('refusals', () => {
    it('refuses an artifact whose bytes do not match its SHA-256, and publishes nothing', async () => {
      const a = await buildTestDeb({ name: 'iota', version: '1.0-1', arch: 'amd64' }, target);
      await s3.send(new PutObjectCommand({ Bucket: artifactsBucket, Key: a.key, Body: Buffer.alloc(a.size, 1) }));
      const f = await failureOf(acts.publishPackages(deb('mismatch', [a])));
      expect(f.type).toBe('ArtifactMismatch');
      expect(f.nonRetryable).toBe(true);
      expect(f.message).toContain(a.key);
      expect(await exists('conveyor-state/apt/bookworm-mismatch.json')).toBe(false);
      expect(await exists('apt/dists/bookworm-mismatch/InRelease')).toBe(false);
    });

    it('refuses other bytes under a published name and version, naming both commits', async () => {
      const onMain = { repository: 'acme/tests', branch: 'main', commit: 'a'.repeat(40), build: 1 };
      const onFeature = { repository: 'acme/tests', branch: 'feature/x', commit: 'b'.repeat(40), build: 1 };
      const a = await buildTestDeb({ name: 'kappa', version: '1.0-1', arch: 'amd64' }, { ...target, identity: onMain });
      const again = await buildTestDeb(
        { name: 'kappa', version: '1.0-1', arch: 'amd64', description: 'rebuilt' },
        { ...target, identity: onFeature },
      );
      await acts.publishPackages(deb('conflict', [a]));
      // The state records, per published file, the build that made it.
      const state = await stateOf('conveyor-state/apt/bookworm-conflict.json');
      expect(state.packages[0].artifact).toMatchObject(onMain);
      const f = await failureOf(acts.publishPackages(deb('conflict', [again])));
      expect(f.type).toBe('ArtifactConflict');
      expect(f.nonRetryable).toBe(true);
      expect(f.message).toContain('kappa 1.0-1 amd64 is already in apt bookworm-conflict (staging, conflict)');
      expect(f.message).toContain(`published from acme/tests branch "main" commit ${'a'.repeat(40)} build 1`);
      expect(f.message).toContain(
        `refusing the one from acme/tests branch "feature/x" commit ${'b'.repeat(40)} build 1`,
      );
      expect(f.message).toContain(a.sha256);
      expect(f.message).toContain(again.sha256);

      // The same for yum; and a file published before commits were recorded says so.
      const r1 = await buildTestRpm({ name: 'kappa', version: '1.0', release: '1' }, rpmTarget);
      const r2 = await buildTestRpm(
        { name: 'kappa', version: '1.0', release: '1', summary: 'rebuilt' },
        { ...rpmTarget, identity: onFeature },
      );
      await acts.publishPackages(rpm('conflict', [r1]));
      const g = await failureOf(acts.publishPackages(rpm('conflict', [r2])));
      expect(g.type).toBe('ArtifactConflict');
      expect(g.message).toContain('published from a build (commit not recorded');
      expect(g.message).toContain(`refusing the one from acme/tests branch "feature/x" commit ${'b'.repeat(40)}`);
    });

    it('refuses a package that is not what its reference says', async () => {
      const a = await buildTestDeb({ name: 'lambda', version: '1.0-1', arch: 'amd64' }, target);
      const f = await failureOf(acts.publishPackages(deb('bad', [{ ...a, version: '1.0-2' }])));
      expect(f.type).toBe('BadPackage');
      expect(f.message).toMatch(/declares lambda 1\.0-1 amd64/);
    });

    it("refuses another distro's artifact instead of silently skipping it", async () => {
      const a = await buildTestDeb({ name: 'xi', version: '1.0-1', arch: 'amd64' }, { ...target, distro: 'trixie' });
      const f = await failureOf(acts.publishPackages(deb('otherdistro', [a])));
      expect(f.type).toBe('BadPackage');
      expect(f.message).toMatch(/built for distro trixie, not bookworm/);
    });

    it('refuses a suite name that could belong to two distro/channel pairs', async () => {
      const f = await failureOf(
        acts.publishPackages({
          ...deb('unstable', []),
          distro: 'bookworm-arm',
          distroSpec: { format: 'deb', arch: 'arm64' },
        }),
      );
      expect(f.type).toBe('BadConfig');
      expect(f.message).toMatch(/codename "bookworm-arm" \(no hyphens/);
    });

    it('refuses a signing key that is not a private key, without quoting it', async () => {
      const key = await testSigningKey();
      const publicKey = await publicKeyOf(key);
      expect(publicKey).toMatch(/^-----BEGIN PGP PUBLIC KEY BLOCK-----/);
      expect(publicKey).not.toMatch(/PRIVATE/);
      const bad = createRepositoryActivities({
        s3,
        artifactsBucket,
        buckets: { staging: bucket, production: bucket },
        signingKey: () => publicKey,
      });
      const a = await buildTestDeb({ name: 'mu', version: '1.0-1', arch: 'amd64' }, target);
      const f = await failureOf(bad.publishPackages(deb('badkey', [a])));
      expect(f.type).toBe('BadConfig');
      expect(f.message).not.toContain('BEGIN PGP');
    });
  });

  describe('packages belong to their repository', () => {
    const as = (repository: string) => ({ ...target, identity: { repository } });
    const rpmAs = (repository: string) => ({ ...rpmTarget, identity: { repository } });

    it("refuses a name outside the repository's packages, and an artifact another repository built", async () => {
      const t = await buildTestDeb({ name: 'tally', version: '1.0-1', arch: 'all' }, target);
      const f = await failureOf(
        acts.publishPackages({ ...deb('owned', [t]), repository: 'acme/widget', packages: undefined }),
      );
      expect(f.type).toBe('PackageNotOwned');
      expect(f.nonRetryable).toBe(true);
      expect(f.message).toContain('package "tally" is not among acme/widget\'s packages (packages: [widget])');

      const built = await buildTestDeb({ name: 'tally', version: '1.0-2', arch: 'all' }, as('acme/other'));
      const g = await failureOf(acts.publishPackages(deb('owned', [built], 5, 'acme/tally')));
      expect(g.type).toBe('PackageNotOwned');
      expect(g.message).toContain('was built by acme/other, not by acme/tally');
      expect(await exists('apt/dists/bookworm-owned/InRelease')).toBe(false);
    });

    it("shares a channel between two repositories: neither publishes the other's name, and neither's retention removes the other's packages", async () => {
      const versions = ['1.0-1', '1.0-2', '1.0-3'];
      const mine = await Promise.all(
        versions.map((v) => buildTestDeb({ name: 'mine', version: v, arch: 'amd64' }, as('acme/mine'))),
      );
      const theirs = await Promise.all(
        versions.map((v) => buildTestDeb({ name: 'theirs', version: v, arch: 'all' }, as('acme/theirs'))),
      );
      // acme/theirs keeps 10 builds, acme/mine keeps 1: each publish of acme/mine applies its
      // retention, and none of them may touch acme/theirs' packages.
      for (const t of theirs) await acts.publishPackages(deb('shared', [t], 10, 'acme/theirs'));
      for (const m of mine) await acts.publishPackages(deb('shared', [m], 1, 'acme/mine'));
      expect(await aptView('bookworm-shared')).toEqual(['mine 1.0-3', 'theirs 1.0-1', 'theirs 1.0-2', 'theirs 1.0-3']);
      // And the other way round: acme/theirs with keepBuilds 1 trims only its own.
      const next = await buildTestDeb({ name: 'theirs', version: '1.0-4', arch: 'all' }, as('acme/theirs'));
      await acts.publishPackages(deb('shared', [next], 1, 'acme/theirs'));
      later(25); // past the window in which replaced generations stay readable
      const r = await acts.publishPackages(deb('shared', [next], 1, 'acme/theirs'));
      // Once the window has passed, what either repository's own retention retired is collected.
      expect(r.removed.filter((k) => k.includes('/pool/')).sort()).toEqual([
        'apt/pool/shared/bookworm/mine/mine_1.0-1_amd64.deb',
        'apt/pool/shared/bookworm/mine/mine_1.0-2_amd64.deb',
        'apt/pool/shared/bookworm/theirs/theirs_1.0-1_all.deb',
        'apt/pool/shared/bookworm/theirs/theirs_1.0-2_all.deb',
        'apt/pool/shared/bookworm/theirs/theirs_1.0-3_all.deb',
      ]);
      expect(await aptView('bookworm-shared')).toEqual(['mine 1.0-3', 'theirs 1.0-4']);

      // acme/theirs cannot publish `mine`, even when its own config lists the name.
      const taken = await buildTestDeb({ name: 'mine', version: '9.0-1', arch: 'amd64' }, as('acme/theirs'));
      const f = await failureOf(acts.publishPackages(deb('shared', [taken], 1, 'acme/theirs')));
      expect(f.type).toBe('PackageNotOwned');
      expect(f.message).toContain(
        'package "mine" in apt bookworm-shared (staging, shared) belongs to acme/mine; acme/theirs cannot publish it',
      );
      expect((await stateOf('conveyor-state/apt/bookworm-shared.json')).owners).toEqual({
        mine: 'acme/mine',
        theirs: 'acme/theirs',
      });
      // What apt-get itself sees: both repositories' packages, the exact bytes.
      const apt = await aptClient(tempDir('apt-shared'), `${http}/apt`, 'bookworm-shared', `${http}/keys/conveyor.asc`);
      expect((await apt.update()).exitCode).toBe(0);
      for (const a of [mine[2], next]) {
        expect((await apt.download(`${a.name}=${a.version}`)).exitCode).toBe(0);
        expect(sha256(fs.readFileSync(apt.file(a.file)))).toBe(a.sha256);
      }

      // YUM: the same rules.
      const rMine = [];
      for (const release of ['1', '2'])
        rMine.push(await buildTestRpm({ name: 'mine', version: '1.0', release }, rpmAs('acme/mine')));
      const rTheirs = [];
      for (const release of ['1', '2'])
        rTheirs.push(await buildTestRpm({ name: 'theirs', version: '1.0', release }, rpmAs('acme/theirs')));
      for (const t of rTheirs) await acts.publishPackages(rpm('shared', [t], 10, 'acme/theirs'));
      for (const m of rMine) await acts.publishPackages(rpm('shared', [m], 1, 'acme/mine'));
      expect(await yumView('yum/el9/shared')).toEqual(['mine 1.0-2', 'theirs 1.0-1', 'theirs 1.0-2']);
      const rTaken = await buildTestRpm({ name: 'mine', version: '9.0', release: '1' }, rpmAs('acme/theirs'));
      const g = await failureOf(acts.publishPackages(rpm('shared', [rTaken], 1, 'acme/theirs')));
      expect(g.type).toBe('PackageNotOwned');
      expect(g.message).toContain('package "mine" in yum/el9/shared (staging, shared) belongs to acme/mine');
    });

    it('lets the first publisher claim a name that a state from before owners left unowned', async () => {
      const old = await Promise.all(
        ['1.0-1', '1.0-2'].map((v) => buildTestDeb({ name: 'old', version: v, arch: 'amd64' }, target)),
      );
      await acts.publishPackages(deb('legacy', old, 10, 'acme/old'));
      // A manifest written before owners existed (and before shards: one schema 1 object).
      const stateKey = 'conveyor-state/apt/bookworm-legacy.json';
      const legacy = { ...without(await stateOf(stateKey), 'layout', 'history', 'owners'), schema: 1 };
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: stateKey, Body: JSON.stringify(legacy) }));

      // Another repository's retention leaves the unowned name alone…
      const fresh = await Promise.all(
        ['1.0-1', '1.0-2'].map((v) => buildTestDeb({ name: 'fresh', version: v, arch: 'amd64' }, target)),
      );
      for (const f of fresh) await acts.publishPackages(deb('legacy', [f], 1, 'acme/fresh'));
      expect(await aptView('bookworm-legacy')).toEqual(['fresh 1.0-2', 'old 1.0-1', 'old 1.0-2']);
      expect((await stateOf(stateKey)).owners).toEqual({ fresh: 'acme/fresh' });
      // …and the first repository to publish it afterwards claims it (retention included).
      const claimed = await buildTestDeb({ name: 'old', version: '1.0-3', arch: 'amd64' }, target);
      await acts.publishPackages(deb('legacy', [claimed], 1, 'acme/old'));
      expect(await aptView('bookworm-legacy')).toEqual(['fresh 1.0-2', 'old 1.0-3']);
      expect((await stateOf(stateKey)).owners).toEqual({ fresh: 'acme/fresh', old: 'acme/old' });
      const f = await failureOf(acts.publishPackages(deb('legacy', [claimed], 1, 'acme/fresh')));
      expect(f.message).toContain('belongs to acme/old');
    });
  });

  describe('control fields and header values that reach a signed index', () => {
    const control = (extra: string) =>
      `Package: smuggler\nVersion: 1.0-1\nArchitecture: all\nMaintainer: x <x@example.com>\n${extra}` +
      'Description: a package with ideas\n more text\n';
    const cases: [string, string, string][] = [
      ['filename', 'Filename: ../../evil\n', 'field "Filename"'],
      ['sha256', `SHA256: ${'0'.repeat(64)}\n`, 'field "SHA256"'],
      ['size', 'size: 1\n', 'field "size"'],
      ['badname', 'Bad Field: x\n', 'bad field name "Bad Field"'],
      ['spacecolon', 'Section : misc\n', 'bad field name "Section "'],
      ['blankcont', 'Depends: libc6,\n \t\n', 'field "Depends" has a continuation line of only whitespace'],
      ['cr', 'Section: misc\r\n', 'carriage return'],
      ['duplicate', 'Package: other\n', 'field "Package" appears twice'],
    ];
    it.each(cases)('refuses a control file with %s, naming the field', async (name, extra, says) => {
      const bad = await craftDeb({ name: 'smuggler', version: '1.0-1', arch: 'all', control: control(extra) }, target);
      const f = await failureOf(acts.publishPackages(deb(`smuggle-${name}`, [bad])));
      expect(f.type).toBe('BadPackage');
      expect(f.nonRetryable).toBe(true);
      expect(f.message).toContain(says);
      expect(await exists(`apt/dists/bookworm-smuggle-${name}/InRelease`)).toBe(false);
    });

    it('refuses a second paragraph in a control file', async () => {
      const text = `${control('')}\nPackage: evil\nVersion: 6.6.6\nArchitecture: all\nFilename: pool/evil.deb\n`;
      const bad = await craftDeb({ name: 'smuggler', version: '1.0-1', arch: 'all', control: text }, target);
      const f = await failureOf(acts.publishPackages(deb('smuggle-paragraph', [bad])));
      expect(f.type).toBe('BadPackage');
      expect(f.message).toContain('second paragraph');
    });

    it("never lets a good package's text add a line to the Packages index", async () => {
      // Continuation lines that look like fields are text of the Description, nothing more.
      const text =
        'Package: honest\nVersion: 1.0-1\nArchitecture: all\nMaintainer: x <x@example.com>\n' +
        'Description: quotes index fields in its text\n Filename: ../../evil\n SHA256: 0000\n .\n Size: 1\n';
      const good = await craftDeb({ name: 'honest', version: '1.0-1', arch: 'all', control: text }, target);
      await acts.publishPackages(deb('honest', [good]));
      const packages = (await get('apt/dists/bookworm-honest/main/binary-amd64/Packages')).body.toString('utf8');
      const stanzas = packages.split('\n\n').filter((x) => x.trim());
      expect(stanzas).toHaveLength(1);
      const fields = stanzas[0].split('\n').filter((l) => l && !/^[ \t]/.test(l));
      expect(fields.map((l) => l.slice(0, l.indexOf(':')))).toEqual([
        'Package',
        'Version',
        'Architecture',
        'Maintainer',
        'Description',
        'Filename',
        'Size',
        'MD5sum',
        'SHA1',
        'SHA256',
        'SHA512',
      ]);
      expect(fields).toContain('Filename: pool/honest/bookworm/honest/honest_1.0-1_all.deb');
      expect(fields).toContain(`SHA256: ${good.sha256}`);
      const apt = await aptClient(tempDir('apt-honest'), `${http}/apt`, 'bookworm-honest', `${http}/keys/conveyor.asc`);
      expect((await apt.update()).exitCode).toBe(0);
      expect((await apt.download('honest=1.0-1')).exitCode).toBe(0);
      expect(sha256(fs.readFileSync(apt.file(good.file)))).toBe(good.sha256);
    });

    it('publishes rpm header text XML-escaped, and refuses text XML cannot hold', async () => {
      const good = await buildTestRpm(
        {
          name: 'xmlish',
          version: '1.0',
          release: '1',
          summary: 'a </summary><evil/> & "q"',
          description: '</description></package><package type="rpm"><name>evil</name>',
        },
        rpmTarget,
      );
      await acts.publishPackages(rpm('xml', [good]));
      expect(await yumView('yum/el9/xml')).toEqual(['xmlish 1.0-1']);
      const repomd = (await get('yum/el9/xml/repodata/repomd.xml')).body.toString('utf8');
      const href = /<location href="([^"]+primary\.xml\.gz)"/.exec(repomd)![1];
      const primary = zlib.gunzipSync((await get(`yum/el9/xml/${href}`)).body).toString('utf8');
      expect(primary).toContain('<summary>a &lt;/summary&gt;&lt;evil/&gt; &amp; "q"</summary>');
      const dnf = dnfClient(tempDir('dnf-xml'), {
        baseUrl: `${http}/yum/el9/xml`,
        keyUrl: `${http}/keys/conveyor.asc`,
      });
      expect((await dnf.makecache()).exitCode).toBe(0);
      expect((await dnf.download('xmlish-1.0-1')).exitCode).toBe(0);

      // A control character: createrepo_c leaves the package out and exits 0; we refuse it.
      const bad = await buildTestRpm(
        { name: 'ctlchar', version: '1.0', release: '1', summary: 'bell %(printf "\\007")' },
        rpmTarget,
      );
      const f = await failureOf(acts.publishPackages(rpm('xml', [bad])));
      expect(f.type).toBe('BadPackage');
      expect(f.nonRetryable).toBe(true);
      expect(f.message).toContain('ctlchar-1.0-1.noarch.rpm');
      expect(f.message).toContain('createrepo_c');
      expect(await yumView('yum/el9/xml')).toEqual(['xmlish 1.0-1']);
    });
  });

  it('generates a 0600 RSA 4096 key and never replaces one', async () => {
    const file = path.join(tempDir('keygen'), 'nested', `key-${uid()}.asc`);
    await generateSigningKey(file, 'Keygen test <keygen@localhost>');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const text = fs.readFileSync(file, 'utf8');
    expect(text).toMatch(/^-----BEGIN PGP PRIVATE KEY BLOCK-----/);
    await expect(generateSigningKey(file, 'Another <x@localhost>')).rejects.toThrow(/refusing to replace/);
    expect(fs.readFileSync(file, 'utf8')).toBe(text);
    // Its own homedir: a test never touches the user's keyring either.
    const home = tempDir('gnupg');
    fs.chmodSync(home, 0o700);
    const listed = await runChecked('gpg', ['--homedir', home, '--batch', '--with-colons', '--show-keys', file]);
    expect(listed).toMatch(/^sec:-:4096:1:/m); // algorithm 1: RSA
  });

  it('reads the state manifest object, not the artifacts, on an unchanged publish', async () => {
    const a = await buildTestDeb({ name: 'nu', version: '1.0-1', arch: 'amd64' }, target);
    await acts.publishPackages(deb('lazy', [a]));
    // The artifact is gone from the artifacts bucket: an unchanged publish must not need it.
    await s3.send(new PutObjectCommand({ Bucket: artifactsBucket, Key: a.key, Body: 'gone' }));
    expect(await acts.publishPackages(deb('lazy', [a]))).toMatchObject({ changed: false });
    const state = await stateOf('conveyor-state/apt/bookworm-lazy.json');
    expect(state.packages.map((p) => [p.name, p.artifact.sha256])).toEqual([['nu', a.sha256]]);
  });
});
