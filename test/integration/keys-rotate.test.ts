// `conveyor keys rotate` end to end against the test stack, read by real apt-get and dnf: a deb
// suite and a yum repository published with the old key; then the rotation's overlap (config
// `signing.nextKeyFile`, the orchestrator restarted, `keys rotate`): keys/conveyor.asc holds both
// keys, InRelease, Release.gpg and repomd.xml.asc carry both signatures, and clients holding the
// old key only, the new key only and both all accept the repositories. Then the end (the new key
// as `signing.keyFile`, `keys rotate --finish`): only the new key is published and signs, a client
// with the old key alone is refused with a signature error, and the next publish writes the rpm
// re-signed by the new key to a path of its own, leaving the old file in place.
import fs from 'node:fs';
import path from 'node:path';
import { runProcess } from '../../activities/exec/process';
import { nextSigningKeyOf, signingKeyOf } from '../../activities';
import { createRepositoryActivities, generateSigningKey, publicKeyOf } from '../../activities/repository';
import { publicKeyFingerprints } from '../../activities/repository/gpg';
import { rotateKeys } from '../../cli/commands/keys';
import { parseS3Url, type ConveyorConfig } from '../../config/conveyor';
import { buildTestDeb, buildTestRpm, testSigningKey } from '../helpers/packages';
import { aptClient, dnfClient } from '../helpers/readers';
import { awsFor, startWorkers, tempDir, testConfig, testEnv } from '../helpers/stack';

const dataUrl = (armored: string) => `data:application/pgp-keys;base64,${Buffer.from(armored).toString('base64')}`;

/** How many signatures gpg finds in a signed file (InRelease) or detached signature. */
async function signatureCount(dir: string, name: string, body: string): Promise<number> {
  const file = path.join(dir, name);
  // The signature block alone: gpg lists a clearsigned text's literal data, not its signatures.
  fs.writeFileSync(file, body.slice(body.indexOf('-----BEGIN PGP SIGNATURE-----')));
  const r = await runProcess('gpg', ['--batch', '--list-packets', file], {
    env: { ...process.env, GNUPGHOME: dir, LANG: 'C' },
  });
  return r.output.split('\n').filter((l) => l.startsWith(':signature packet:')).length;
}

describe('conveyor keys rotate', () => {
  let workers: { stop(): Promise<void> } | undefined;

  afterEach(async () => {
    await workers?.stop();
    workers = undefined;
  });

  it('overlaps two keys for apt and dnf clients holding either or both, then retires the old one', async () => {
    const config = testConfig(
      [{ name: 'acme/rotated', cloneUrl: '/dev/null', steps: {}, more: { packages: ['rotated'] } }],
      {},
      { deb: { format: 'deb', codename: 'bookworm', arch: 'amd64' }, el: { format: 'rpm', arch: 'x86_64' } },
    );
    const [deb] = Object.keys(config.distros).filter((d) => config.distros[d].format === 'deb');
    const [el] = Object.keys(config.distros).filter((d) => config.distros[d].format === 'rpm');
    const s3 = (await awsFor(config)).s3;
    const artifactsBucket = parseS3Url(config.storage.artifacts).bucket;
    const bucket = parseS3Url(config.storage.staging).bucket;
    const http = `${testEnv().aws}/${bucket}`;
    const work = tempDir('keys-rotate');

    const oldKey = await testSigningKey();
    const nextKeyFile = path.join(work, 'next-key.asc');
    await generateSigningKey(nextKeyFile, 'Conveyor next <next@localhost>');
    const oldPublic = await publicKeyOf(oldKey);
    const newPublic = await publicKeyOf(fs.readFileSync(nextKeyFile, 'utf8'));
    const [oldFpr] = await publicKeyFingerprints(oldPublic);
    const [newFpr] = await publicKeyFingerprints(newPublic);

    const publisher = (c: ConveyorConfig) =>
      createRepositoryActivities({
        s3,
        artifactsBucket,
        buckets: { staging: bucket, production: parseS3Url(config.storage.production).bucket },
        signingKey: () => signingKeyOf(c, {}),
        nextSigningKey: () => nextSigningKeyOf(c, {}),
        workDir: tempDir('keys-work'),
      });
    const publish = async (c: ConveyorConfig, version: string, release: string) => {
      const d = await buildTestDeb(
        { name: 'rotated', version: `${version}-${release}`, arch: 'all' },
        { s3, bucket: artifactsBucket, distro: deb, dir: tempDir('keys-deb') },
      );
      const r = await buildTestRpm(
        { name: 'rotated', version, release },
        { s3, bucket: artifactsBucket, distro: el, dir: tempDir('keys-rpm') },
      );
      const a = publisher(c);
      for (const [distro, artifact] of [
        [deb, d],
        [el, r],
      ] as const) {
        await a.publishPackages({
          environment: 'staging',
          channel: 'unstable',
          distro,
          distroSpec: config.distros[distro],
          artifacts: [artifact],
          keepBuilds: 3,
          repository: 'acme/rotated',
        });
      }
    };
    await publish(config, '1.0', '1');

    const clients = (label: string, key: string) => {
      const dir = tempDir(`keys-${label}`);
      return {
        apt: () => aptClient(path.join(dir, 'apt'), `${http}/apt`, 'bookworm-unstable', dataUrl(key)),
        dnf: () => {
          fs.mkdirSync(dir, { recursive: true });
          fs.writeFileSync(path.join(dir, 'key.asc'), key);
          return dnfClient(path.join(dir, 'dnf'), {
            baseUrl: `${http}/yum/${el}/unstable`,
            keyUrl: `file://${dir}/key.asc`,
          });
        },
      };
    };
    const get = async (key: string) => {
      const res = await fetch(`${http}/${key}`);
      expect(res.status).toBe(200);
      return res.text();
    };

    // The overlap: the orchestrator runs with signing.nextKeyFile.
    const overlap: ConveyorConfig = { ...config, signing: { ...config.signing, nextKeyFile } };
    await expect(rotateKeys(overlap, { finish: true })).rejects.toThrow(/nextKeyFile\/nextKeyEnv is still set/);
    await expect(rotateKeys(config)).rejects.toThrow(/no rotation under way/);
    workers = await startWorkers(overlap, { builders: false });
    const started = await rotateKeys(overlap);
    expect(started.resigned.map((r) => `${r.environment} ${r.distro}`).sort()).toEqual(
      [`staging ${deb}`, `staging ${el}`].sort(),
    );
    expect(started.published).toEqual([
      { environment: 'staging', fingerprints: [oldFpr, newFpr] },
      { environment: 'production', fingerprints: [] },
    ]);
    const gpgHome = tempDir('keys-gpg');
    expect(await signatureCount(gpgHome, 'InRelease', await get('apt/dists/bookworm-unstable/InRelease'))).toBe(2);
    expect(await signatureCount(gpgHome, 'Release.gpg', await get('apt/dists/bookworm-unstable/Release.gpg'))).toBe(2);
    expect(
      await signatureCount(gpgHome, 'repomd.xml.asc', await get(`yum/${el}/unstable/repodata/repomd.xml.asc`)),
    ).toBe(2);

    for (const [label, key] of [
      ['old', oldPublic],
      ['new', newPublic],
      ['both', await get('keys/conveyor.asc')],
    ] as const) {
      const c = clients(label, key);
      const apt = await c.apt();
      const updated = await apt.update();
      expect({ label, exitCode: updated.exitCode, output: updated.exitCode ? updated.output : '' }).toEqual({
        label,
        exitCode: 0,
        output: '',
      });
      expect((await apt.download('rotated=1.0-1')).exitCode).toBe(0);
      const dnf = c.dnf();
      const cached = await dnf.makecache();
      expect({ label, exitCode: cached.exitCode, output: cached.exitCode ? cached.output : '' }).toEqual({
        label,
        exitCode: 0,
        output: '',
      });
      expect((await dnf.download('rotated-1.0-1')).exitCode).toBe(0);
    }
    // A publish during the overlap signs with both keys too, and keeps the rpms signed by the
    // current key (nothing is re-signed before the rotation ends).
    await publish(overlap, '1.1', '1');
    expect(await signatureCount(gpgHome, 'InRelease2', await get('apt/dists/bookworm-unstable/InRelease'))).toBe(2);
    const oldClient = clients('old-install', oldPublic).dnf();
    const installed = await oldClient.install('rotated-1.1-1');
    expect({ exitCode: installed.exitCode, output: installed.exitCode ? installed.output : '' }).toEqual({
      exitCode: 0,
      output: '',
    });
    await workers.stop();
    workers = undefined;

    // The end: the new key is the signing key, nextKeyFile is gone; the orchestrator restarted.
    const finished: ConveyorConfig = { ...config, signing: { ...config.signing, keyFile: nextKeyFile } };
    workers = await startWorkers(finished, { builders: false });
    const done = await rotateKeys(finished, { finish: true });
    expect(done.resigned).toHaveLength(2);
    expect(done.published[0]).toEqual({ environment: 'staging', fingerprints: [newFpr] });
    expect(await signatureCount(gpgHome, 'InRelease3', await get('apt/dists/bookworm-unstable/InRelease'))).toBe(1);

    const fresh = clients('new-after', newPublic);
    expect((await (await fresh.apt()).update()).exitCode).toBe(0);
    expect((await fresh.dnf().makecache()).exitCode).toBe(0);
    const stale = clients('old-after', oldPublic);
    const refusedApt = await (await stale.apt()).update();
    expect(refusedApt.exitCode).not.toBe(0);
    expect(refusedApt.output).toMatch(/NO_PUBKEY|signatures couldn't be verified|not signed/);
    const refusedDnf = await stale.dnf().makecache();
    expect(refusedDnf.exitCode).not.toBe(0);
    expect(refusedDnf.output).toMatch(/GPG|signature|repomd\.xml/i);

    // The next publish re-signs the old key's rpms with the new key, each to a path of its own:
    // the file the previous index names stays as it was for clients holding that index.
    const rpmKey = `yum/${el}/unstable/Packages/rotated-1.0-1.noarch.rpm`;
    const before = await fetch(`${http}/${rpmKey}`).then(async (r) => Buffer.from(await r.arrayBuffer()));
    await publish(finished, '1.2', '1');
    const after = await fetch(`${http}/${rpmKey}`).then(async (r) => Buffer.from(await r.arrayBuffer()));
    expect(after.equals(before)).toBe(true);
    const moved = `yum/${el}/unstable/Packages/${newFpr.slice(-16).toLowerCase()}/rotated-1.0-1.noarch.rpm`;
    expect((await fetch(`${http}/${moved}`)).status).toBe(200);
    const newClient = fresh.dnf();
    for (const v of ['rotated-1.0-1', 'rotated-1.2-1']) {
      const r = await newClient.install(v);
      expect({ v, exitCode: r.exitCode, output: r.exitCode ? r.output : '' }).toEqual({ v, exitCode: 0, output: '' });
    }
  });
});
