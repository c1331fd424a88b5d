// A .deb's index facts (activities/repository/deb-index-facts.ts) stand in for its download at
// publish time, against the test stack's S3 endpoint: the repository is the one a download would
// have made (checked byte for byte and by a real apt-get), facts that do not match their pointer
// or hold a path Contents cannot list are not used (the artifact is read instead, and the log says
// why), a stanza the facts carry is checked like a downloaded one, and the pool copy is still held
// to the reference's SHA-256. The S3 client's GetObject requests are recorded (a middleware on the
// real client) to show which artifacts were downloaded.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import type { PublishPackagesInput, RepositoryActivities } from '../../activities/repository';
import { aptIndexKey, readDebIndexFacts } from '../../activities/repository/deb-index-facts';
import type { ArtifactRef } from '../../common/types';
import {
  buildTestDeb,
  publishLogged,
  testPublisher,
  type ArtifactTarget,
  type TestArtifact,
} from '../helpers/packages';
import { aptClient } from '../helpers/readers';
import { awsFor, tempDir, testConfig, testEnv } from '../helpers/stack';

const sha256 = (b: Buffer | string) => crypto.createHash('sha256').update(b).digest('hex');

describe('publishing .debs from their index facts', () => {
  let s3: S3Client;
  let bucket: string;
  let artifactsBucket: string;
  let http: string;
  let acts: RepositoryActivities;
  let target: ArtifactTarget;
  /** Keys of every GetObject the publisher's S3 client sent. */
  const gets: string[] = [];

  beforeAll(async () => {
    const config = testConfig([]);
    s3 = (await awsFor(config)).s3;
    s3.middlewareStack.add(
      (next, context) => (args) => {
        if (context.commandName === 'GetObjectCommand') gets.push((args.input as { Key: string }).Key);
        return next(args);
      },
      { step: 'initialize', name: 'recordGets' },
    );
    ({ acts, artifactsBucket, bucket, target } = await testPublisher(config, s3, 'facts'));
    http = `${testEnv().aws}/${bucket}`;
  });
  beforeEach(() => gets.splice(0));

  const deb = (channel: string, artifacts: ArtifactRef[]): PublishPackagesInput => ({
    environment: 'staging',
    channel,
    distro: 'bookworm',
    distroSpec: { format: 'deb', codename: 'bookworm', arch: 'amd64' },
    artifacts,
    keepBuilds: 5,
    repository: 'acme/tests',
    packages: ['tests', ...artifacts.map((a) => a.name)],
  });
  const get = async (key: string) => Buffer.from(await (await fetch(`${http}/${key}`)).arrayBuffer());
  /** Stores facts as the package stage does (its own function), or the given bytes, and names them. */
  const withFacts = async (a: TestArtifact, bytes?: Buffer): Promise<TestArtifact> => {
    const body = bytes ?? (await readDebIndexFacts(a.path, a));
    const key = aptIndexKey(a.key);
    await s3.send(new PutObjectCommand({ Bucket: artifactsBucket, Key: key, Body: body }));
    return { ...a, aptIndex: { key, sha256: sha256(body) } };
  };
  const factsOf = async (a: TestArtifact) => JSON.parse((await readDebIndexFacts(a.path, a)).toString()) as object;
  /** The published Packages and Contents, without the Filename lines (pools differ by channel). */
  const indexes = async (suite: string) => ({
    packages: (await get(`apt/dists/${suite}/main/binary-amd64/Packages`)).toString().replace(/^Filename: .*\n/gm, ''),
    contents: zlib.gunzipSync(await get(`apt/dists/${suite}/main/Contents-amd64.gz`)).toString(),
  });
  const logged = (input: PublishPackagesInput) => publishLogged(acts, input);

  it('publishes without downloading them, the same repository a download makes, which apt-get reads', async () => {
    const a = await buildTestDeb({ name: 'alpha', version: '1.0-1', arch: 'all', payloadBytes: 200_000 }, target);
    const b = await buildTestDeb({ name: 'beta', version: '2.0-1', arch: 'amd64' }, target);
    const [fa, fb] = [await withFacts(a), await withFacts(b)];
    const result = await acts.publishPackages(deb('facts', [fa, fb]));
    expect(result.uploaded).toEqual(
      expect.arrayContaining([
        'apt/pool/facts/bookworm/alpha/alpha_1.0-1_all.deb',
        'apt/pool/facts/bookworm/beta/beta_2.0-1_amd64.deb',
      ]),
    );
    expect(gets).toEqual(expect.arrayContaining([fa.aptIndex!.key, fb.aptIndex!.key]));
    expect(gets).not.toContain(a.key);
    expect(gets).not.toContain(b.key);

    // References without facts (runs recorded before): each .deb downloaded and read.
    gets.splice(0);
    await acts.publishPackages(deb('download', [a, b]));
    expect(gets).toEqual(expect.arrayContaining([a.key, b.key]));
    expect(await indexes('bookworm-facts')).toEqual(await indexes('bookworm-download'));
    expect((await indexes('bookworm-facts')).contents).toMatch(/^usr\/share\/alpha\/payload +misc\/alpha$/m);

    // The pool files are the built bytes, and a real apt-get takes them from the indexes.
    expect(sha256(await get('apt/pool/facts/bookworm/alpha/alpha_1.0-1_all.deb'))).toBe(a.sha256);
    const apt = await aptClient(tempDir('facts-apt'), `${http}/apt`, 'bookworm-facts', `${http}/keys/conveyor.asc`);
    const update = await apt.update();
    expect(update.exitCode).toBe(0);
    const download = await apt.download('alpha');
    expect(download.output).not.toMatch(/^(E|W|Err):/m);
    expect(sha256(fs.readFileSync(apt.file('alpha_1.0-1_all.deb')))).toBe(a.sha256);
  });

  it('reads the artifact itself when its facts changed after the build or hold a path Contents cannot list', async () => {
    const c = await buildTestDeb({ name: 'gamma', version: '1.0-1', arch: 'all' }, target);
    const fc = await withFacts(c);
    // Changed after the reference was made: the bytes are not the ones it names.
    await s3.send(
      new PutObjectCommand({
        Bucket: artifactsBucket,
        Key: fc.aptIndex!.key,
        Body: JSON.stringify({
          ...(await factsOf(c)),
          control: 'Package: gamma\nVersion: 1.0-1\nArchitecture: all\nDepends: evil\n',
        }),
      }),
    );
    const changed = await logged(deb('changed', [fc]));
    expect(changed.result.changed).toBe(true);
    expect(gets).toContain(c.key);
    expect(changed.log).toMatch(
      new RegExp(
        `publish: reading ${c.key} itself: its index facts cannot be used \\(s3://${artifactsBucket}/${fc.aptIndex!.key} ` +
          `has SHA-256 [0-9a-f]{64}, the reference promises ${fc.aptIndex!.sha256}\\)`,
      ),
    );
    expect((await get('apt/dists/bookworm-changed/main/binary-amd64/Packages')).toString()).not.toContain('evil');

    // A path with a newline would add a line of its own to Contents.
    gets.splice(0);
    const d = await buildTestDeb({ name: 'delta', version: '1.0-1', arch: 'all' }, target);
    const facts = { ...(await factsOf(d)), files: ['usr/share/delta/VERSION\nusr/bin/sudo'] };
    const fd = await withFacts(d, Buffer.from(JSON.stringify(facts)));
    const listed = await logged(deb('listed', [fd]));
    expect(gets).toContain(d.key);
    expect(listed.log).toContain('its file list holds a path Contents cannot list');
    const contents = zlib.gunzipSync(await get('apt/dists/bookworm-listed/main/Contents-amd64.gz')).toString();
    expect(contents).toMatch(/^usr\/share\/delta\/VERSION +misc\/delta$/m);
    expect(contents).not.toContain('sudo');
  });

  it('checks the stanza the facts carry against the reference, as a downloaded one', async () => {
    const e = await buildTestDeb({ name: 'epsilon', version: '1.0-1', arch: 'all' }, target);
    // Facts whose pointer matches (the builder wrote them) but whose stanza names another version.
    const facts = { ...(await factsOf(e)), control: 'Package: epsilon\nVersion: 9.9-9\nArchitecture: all\n' };
    const fe = await withFacts(e, Buffer.from(JSON.stringify(facts)));
    const err = await acts.publishPackages(deb('stanza', [fe])).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('BadPackage');
    expect((err as ApplicationFailure).message).toBe(
      `${e.file} declares epsilon 9.9-9 all, but its artifact reference says epsilon 1.0-1 all`,
    );
    expect((await fetch(`${http}/apt/dists/bookworm-stanza/InRelease`)).status).toBe(404);
  });

  it('still holds the pool file to the reference: a changed artifact is refused, a damaged pool file rewritten', async () => {
    // The artifact's bytes replaced after the build: the server-side copy does not hash to the
    // reference, so it is deleted and nothing is published.
    const z = await buildTestDeb({ name: 'zeta', version: '1.0-1', arch: 'all' }, target);
    const fz = await withFacts(z);
    await s3.send(new PutObjectCommand({ Bucket: artifactsBucket, Key: z.key, Body: Buffer.from('not zeta') }));
    const err = await acts.publishPackages(deb('swapped', [fz])).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect((err as ApplicationFailure).type).toBe('ArtifactMismatch');
    expect((err as ApplicationFailure).message).toContain(`the reference promises ${z.sha256}`);
    expect((await fetch(`${http}/apt/pool/swapped/bookworm/zeta/zeta_1.0-1_all.deb`)).status).toBe(404);

    // Other bytes already at the pool key: no copy is tried over them; the artifact is fetched,
    // verified and uploaded in their place.
    gets.splice(0);
    const h = await buildTestDeb({ name: 'eta', version: '1.0-1', arch: 'all' }, target);
    const fh = await withFacts(h);
    const pool = 'apt/pool/damaged/bookworm/eta/eta_1.0-1_all.deb';
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: pool, Body: Buffer.from('damaged') }));
    await acts.publishPackages(deb('damaged', [fh]));
    expect(gets).toContain(h.key);
    expect(sha256(await get(pool))).toBe(h.sha256);
    expect(path.basename(pool)).toBe(h.file);
  });
});
