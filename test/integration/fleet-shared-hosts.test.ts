// Several repositories on one host (issue 13). Two projects publish to the same staging bucket and
// suite, and both deploy to the same real hosts (Debian roots with their own apt-get, an rpm host
// with dnf): the host ends up with one apt source per repository URL and suite, one yum .repo per
// baseurl and one keyring per signing key, whatever the order, so apt never refuses the source list
// ("Conflicting values set for option Signed-By") and every package can be upgraded and rolled
// back. A host left in the earlier layout (one source and keyring per package) is repaired by the
// next deploy, idempotently.
import fs from 'node:fs';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import {
  createFleetActivities,
  keyringIdFor,
  sourceIdFor,
  type FleetActivities,
  type Host,
  type UpgradeInput,
} from '../../activities/fleet';
import { openSigner } from '../../activities/repository/gpg';
import { parseS3Url, type ConveyorConfig } from '../../config/conveyor';
import { makeLocalHost, publishStaging, registerHosts, type StagingRepo } from '../helpers/hosts';
import { testSigningKey } from '../helpers/packages';
import { awsFor, DEB_AND_RPM, tempDir, testConfig, uid } from '../helpers/stack';

type Format = 'deb' | 'rpm';

describe('fleet: several repositories on one host', () => {
  let config: ConveyorConfig;
  let s3: S3Client;
  let acts: FleetActivities;
  let hostsDir: string;
  let debDistro: string;
  let rpmDistro: string;
  let fingerprint: string;
  // Channels of their own: the staging bucket is shared with other test files.
  const channel = `shared${uid()}`;
  const pairChannel = `pair${uid()}`;
  /** widget (acme/widget) and tally (acme/tally) in one suite; pa and pb of one repository in another. */
  const repos: Record<string, StagingRepo> = {};
  const role = `shared-${uid()}`;

  beforeAll(async () => {
    config = testConfig([], {}, DEB_AND_RPM);
    [debDistro, rpmDistro] = Object.keys(config.distros);
    const aws = await awsFor(config);
    s3 = aws.s3;
    hostsDir = tempDir('shared-hosts');
    const dir = tempDir('shared-packages');
    // One at a time: publishes to one channel take turns (the publish stage's lock does that).
    repos.widget = await publishStaging(config, s3, dir, 'widget', ['1.0.0-1', '1.0.0-2'], channel, {
      repository: 'acme/widget',
    });
    repos.tally = await publishStaging(config, s3, dir, 'tally', ['2.0.0-1', '2.0.0-2'], channel, {
      repository: 'acme/tally',
    });
    const pair = { repository: 'acme/pair', packages: ['pa', 'pb'] };
    repos.pa = await publishStaging(config, s3, dir, 'pa', ['3.0.0-1', '3.0.0-2'], pairChannel, pair);
    repos.pb = await publishStaging(config, s3, dir, 'pb', ['4.0.0-1', '4.0.0-2'], pairChannel, pair);
    acts = createFleetActivities({
      ec2: aws.ec2,
      ssm: aws.ssm,
      s3,
      artifactsBucket: parseS3Url(config.storage.artifacts).bucket,
      artifactsPrefix: '',
      hostsDir,
    });
    // The keyring is named after the signing key's own fingerprint (the private key's).
    const signer = await openSigner(await testSigningKey());
    fingerprint = signer.fingerprint;
    await signer.close();
    const tags = { Environment: 'staging', Role: role };
    const roots = await Promise.all([
      makeLocalHost(hostsDir, 'deb-a', 'deb'),
      makeLocalHost(hostsDir, 'deb-b', 'deb'),
      makeLocalHost(hostsDir, 'rpm-a', 'rpm'),
      makeLocalHost(hostsDir, 'rpm-b', 'rpm'),
    ]);
    await registerHosts(aws.ec2, [
      { name: 'deb-a', distro: debDistro, executor: 'local', root: roots[0], tags },
      { name: 'deb-b', distro: debDistro, executor: 'local', root: roots[1], tags },
      { name: 'rpm-a', distro: rpmDistro, executor: 'local', root: roots[2], tags },
      { name: 'rpm-b', distro: rpmDistro, executor: 'local', root: roots[3], tags },
    ]);
  }, 900_000);

  async function publicKeyText(): Promise<string> {
    const res = await fetch(repos.widget.keyUrl);
    expect(res.status).toBe(200);
    return res.text();
  }

  const hostsOf = async (format: Format) =>
    acts.discoverHosts({
      tags: { Environment: 'staging', Role: role },
      distro: format === 'deb' ? debDistro : rpmDistro,
    });
  const formatOf = (h: Host): Format => (h.distro === debDistro ? 'deb' : 'rpm');
  const input = (host: Host, packageName: string, version: string, allowDowngrade = false): UpgradeInput => {
    const repo = repos[packageName];
    return {
      host,
      format: formatOf(host),
      packageName,
      version,
      repo:
        formatOf(host) === 'deb' ? { ...repo.apt, keyUrl: repo.keyUrl } : { url: repo.yum.url, keyUrl: repo.keyUrl },
      logKey: `logs/shared-${uid()}/${host.name}.log`,
      allowDowngrade,
    };
  };
  const deploy = async (host: Host, packageName: string, version: string, allowDowngrade = false) => {
    const r = await acts.upgradeHost(input(host, packageName, version, allowDowngrade));
    expect(r.after).toBe(version);
    return r;
  };
  const installed = async (host: Host, packageName: string) =>
    (await acts.hostVersion({ host, packageName, format: formatOf(host) })).version;
  const conveyorFiles = (host: Host, dir: string, suffix: string) =>
    fs
      .readdirSync(path.join(host.root!, dir))
      .filter((f) => f.startsWith('conveyor-') && f.endsWith(suffix))
      .sort();
  /** The host's own package manager reads its whole configuration (every source, every keyring). */
  const readsEverything = async (host: Host) => {
    const command =
      formatOf(host) === 'deb' ? 'apt-get update 2>&1' : 'dnf -q -y makecache 2>&1 && dnf -q repolist --enabled 2>&1';
    const res = await acts.runOnHost({ host, command, env: {}, logKey: `logs/shared-${uid()}/read.log` });
    expect(res.tail).not.toMatch(/Conflicting values|^E: /m);
    expect(res.exitCode).toBe(0);
    return res.tail;
  };
  /** Exactly one source per repository URL and suite and one keyring for the one signing key. */
  const expectLayout = (host: Host, channels: string[]) => {
    const keyring = `${keyringIdFor(fingerprint)}.asc`;
    if (formatOf(host) === 'deb') {
      const ids = channels.map((c) => sourceIdFor(repos.widget.apt.url, `bookworm-${c}`));
      expect(conveyorFiles(host, 'etc/apt/sources.list.d', '.list')).toEqual(ids.map((id) => `${id}.list`).sort());
      expect(conveyorFiles(host, 'etc/apt/keyrings', '.asc')).toEqual([keyring]);
      for (const [i, id] of ids.entries()) {
        expect(fs.readFileSync(path.join(host.root!, 'etc/apt/sources.list.d', `${id}.list`), 'utf8')).toBe(
          `deb [signed-by=/etc/apt/keyrings/${keyring}] ${repos.widget.apt.url} bookworm-${channels[i]} main\n`,
        );
      }
    } else {
      const urls = channels.map((c) => (c === channel ? repos.widget.yum.url : repos.pa.yum.url));
      const ids = urls.map((u) => sourceIdFor(u));
      expect(conveyorFiles(host, 'etc/yum.repos.d', '.repo')).toEqual(ids.map((id) => `${id}.repo`).sort());
      expect(conveyorFiles(host, 'etc/pki/rpm-gpg', '.asc')).toEqual([keyring]);
      for (const [i, id] of ids.entries()) {
        const text = fs.readFileSync(path.join(host.root!, 'etc/yum.repos.d', `${id}.repo`), 'utf8');
        expect(text).toContain(`[${id}]\n`);
        expect(text).toContain(`baseurl=${urls[i]}\n`);
        expect(text).toContain(`gpgkey=file:///etc/pki/rpm-gpg/${keyring}\n`);
        expect(text).toMatch(/^repo_gpgcheck=1$/m);
      }
    }
  };

  it.each<Format>(['deb', 'rpm'])(
    '%s: two repositories deploy to the same hosts in both orders, upgrade and roll back each',
    async (format) => {
      const [a, b] = await hostsOf(format);
      // Host a: widget first, then tally; host b: tally first, then widget.
      await deploy(a, 'widget', '1.0.0-1');
      await deploy(a, 'tally', '2.0.0-1');
      await deploy(b, 'tally', '2.0.0-1');
      await deploy(b, 'widget', '1.0.0-1');
      for (const host of [a, b]) {
        expectLayout(host, [channel]);
        await readsEverything(host);
      }
      // Each project's next build, then each one's rollback, on both hosts.
      for (const host of [a, b]) {
        await deploy(host, 'widget', '1.0.0-2');
        await deploy(host, 'tally', '2.0.0-2');
        expect([await installed(host, 'widget'), await installed(host, 'tally')]).toEqual(['1.0.0-2', '2.0.0-2']);
        await deploy(host, 'widget', '1.0.0-1', true);
        expect([await installed(host, 'widget'), await installed(host, 'tally')]).toEqual(['1.0.0-1', '2.0.0-2']);
        await deploy(host, 'tally', '2.0.0-1', true);
        expect([await installed(host, 'widget'), await installed(host, 'tally')]).toEqual(['1.0.0-1', '2.0.0-1']);
        expectLayout(host, [channel]);
        await readsEverything(host);
      }
    },
    600_000,
  );

  it.each<Format>(['deb', 'rpm'])(
    '%s: one repository with two packages in one suite, beside another suite; rolled back each',
    async (format) => {
      const [a] = await hostsOf(format);
      await deploy(a, 'pa', '3.0.0-2');
      await deploy(a, 'pb', '4.0.0-2');
      // The same key signs both suites: one keyring, two sources.
      expectLayout(a, [channel, pairChannel]);
      await readsEverything(a);
      await deploy(a, 'pa', '3.0.0-1', true);
      expect([await installed(a, 'pa'), await installed(a, 'pb')]).toEqual(['3.0.0-1', '4.0.0-2']);
      await deploy(a, 'pb', '4.0.0-1', true);
      expect([await installed(a, 'pa'), await installed(a, 'pb')]).toEqual(['3.0.0-1', '4.0.0-1']);
      expectLayout(a, [channel, pairChannel]);
      await readsEverything(a);
    },
    600_000,
  );

  it('deb: a host left in the one-source-per-package layout is repaired by the next deploy, idempotently', async () => {
    const root = await makeLocalHost(hostsDir, `old-deb-${uid()}`, 'deb');
    const host: Host = {
      instanceId: 'i-0123456789abcdef1',
      name: 'old-deb',
      distro: debDistro,
      executor: 'local',
      root,
    };
    const key = await publicKeyText();
    const url = repos.widget.apt.url;
    const suite = `bookworm-${channel}`;
    // What the earlier deploys left: widget installed from conveyor-widget, then tally's deploy
    // added conveyor-tally for the same URL and suite with its own keyring.
    fs.mkdirSync(path.join(root, 'etc/apt/keyrings'), { recursive: true });
    for (const name of ['widget', 'tally', 'other']) {
      fs.writeFileSync(path.join(root, `etc/apt/keyrings/conveyor-${name}.asc`), key);
    }
    const old = (name: string, s: string) =>
      fs.writeFileSync(
        path.join(root, `etc/apt/sources.list.d/conveyor-${name}.list`),
        `deb [signed-by=/etc/apt/keyrings/conveyor-${name}.asc] ${url} ${s} main\n`,
      );
    old('widget', suite);
    old('tally', suite);
    // Another suite of the same URL through its own keyring does not conflict: it stays.
    old('other', `bookworm-${pairChannel}`);
    const broken = await acts.runOnHost({ host, command: 'apt-get update 2>&1', env: {}, logKey: `logs/x-${uid()}` });
    expect(broken.exitCode).not.toBe(0);
    expect(broken.tail).toMatch(/Conflicting values set for option Signed-By/);

    const first = await acts.upgradeHost(input(host, 'tally', '2.0.0-2'));
    expect(first).toMatchObject({ before: null, after: '2.0.0-2' });
    const id = sourceIdFor(url, suite);
    const keyring = `${keyringIdFor(fingerprint)}.asc`;
    expect(conveyorFiles(host, 'etc/apt/sources.list.d', '.list')).toEqual(
      [`${id}.list`, 'conveyor-other.list'].sort(),
    );
    expect(conveyorFiles(host, 'etc/apt/keyrings', '.asc')).toEqual(['conveyor-other.asc', keyring].sort());
    await readsEverything(host);
    const snapshot = () =>
      ['etc/apt/sources.list.d', 'etc/apt/keyrings'].flatMap((d) =>
        fs.readdirSync(path.join(root, d)).map((f) => [f, fs.readFileSync(path.join(root, d, f), 'utf8')]),
      );
    const after = snapshot();
    // Idempotent: the next deploys (another package, a rollback) leave the same files.
    await deploy(host, 'widget', '1.0.0-2');
    await deploy(host, 'tally', '2.0.0-1', true);
    expect(snapshot()).toEqual(after);
    expect([await installed(host, 'widget'), await installed(host, 'tally')]).toEqual(['1.0.0-2', '2.0.0-1']);
    await readsEverything(host);
  }, 600_000);

  it('rpm: a host with one .repo per package for the same baseurl is repaired by the next deploy', async () => {
    const root = await makeLocalHost(hostsDir, `old-rpm-${uid()}`, 'rpm');
    const host: Host = {
      instanceId: 'i-0123456789abcdef2',
      name: 'old-rpm',
      distro: rpmDistro,
      executor: 'local',
      root,
    };
    const url = repos.widget.yum.url;
    fs.mkdirSync(path.join(root, 'etc/yum.repos.d'), { recursive: true });
    for (const name of ['widget', 'tally']) {
      fs.writeFileSync(
        path.join(root, `etc/yum.repos.d/conveyor-${name}.repo`),
        [
          `[conveyor-${name}]`,
          `name=Conveyor ${name}`,
          `baseurl=${url}`,
          'enabled=1',
          'gpgcheck=1',
          'repo_gpgcheck=1',
          `gpgkey=${repos.widget.keyUrl}`,
          'metadata_expire=0',
          '',
        ].join('\n'),
      );
    }
    await deploy(host, 'widget', '1.0.0-2');
    expectLayout(host, [channel]);
    const text = await readsEverything(host);
    expect(text).not.toMatch(/conveyor-widget|conveyor-tally/);
    await deploy(host, 'tally', '2.0.0-2');
    await deploy(host, 'widget', '1.0.0-1', true);
    expectLayout(host, [channel]);
    expect([await installed(host, 'widget'), await installed(host, 'tally')]).toEqual(['1.0.0-1', '2.0.0-2']);
  }, 600_000);
});
