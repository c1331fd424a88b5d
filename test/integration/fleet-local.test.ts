// The deploy stage's I/O against real hosts: Debian roots (two deb hosts, one rpm host with dnf)
// registered in the test EC2 endpoint, upgraded by their own apt-get and dnf from a signed
// repository published to the staging bucket, versions read back from dpkg and rpm each time.
// Also the ways an upgrade must fail (version not published, wrong key, a host that stays on
// another version), runOnHost's exit codes, tails and logs, and cancellation killing the tree.
import fs from 'node:fs';
import path from 'node:path';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import {
  createFleetActivities,
  resetLocalHost,
  type FleetActivities,
  type Host,
  sourceIdFor,
  type UpgradeInput,
} from '../../activities/fleet';
import { runChecked } from '../../activities/exec/process';
import { publicKeyOf } from '../../activities/repository';
import { parseS3Url, type ConveyorConfig } from '../../config/conveyor';
import { failureOf, makeLocalHost, publishStaging, registerHosts, type StagingRepo } from '../helpers/hosts';
import { otherSigningKey } from '../helpers/packages';
import { awsFor, DEB_AND_RPM, tempDir, testConfig, uid } from '../helpers/stack';

const quiet = new DefaultLogger('ERROR');

async function leftovers(marker: string): Promise<string[]> {
  const ps = await runChecked('ps', ['-eo', 'pid,args']);
  return ps.split('\n').filter((l) => l.includes(marker) && !l.includes('ps -eo'));
}

describe('fleet: local hosts upgraded from the published staging repository', () => {
  let config: ConveyorConfig;
  let s3: S3Client;
  let artifactsBucket: string;
  let acts: FleetActivities;
  let repo: StagingRepo;
  let hosts: Host[];
  let hostsDir: string;
  let debDistro: string;
  let rpmDistro: string;
  const role = `widget-${uid()}`;

  beforeAll(async () => {
    config = testConfig([], {}, DEB_AND_RPM);
    [debDistro, rpmDistro] = Object.keys(config.distros);
    const aws = await awsFor(config);
    s3 = aws.s3;
    artifactsBucket = parseS3Url(config.storage.artifacts).bucket;
    hostsDir = tempDir('fleet-hosts');
    const [published, deb1, deb2, rpm1] = await Promise.all([
      publishStaging(config, s3, tempDir('fleet-packages'), 'widget', ['1.0.0-1', '1.0.0-2', '1.0.0-3']),
      makeLocalHost(hostsDir, 'deb-1', 'deb'),
      makeLocalHost(hostsDir, 'deb-2', 'deb'),
      makeLocalHost(hostsDir, 'rpm-1', 'rpm'),
    ]);
    repo = published;
    const tags = { Environment: 'staging', Role: role };
    await registerHosts(aws.ec2, [
      { name: 'deb-2', distro: debDistro, executor: 'local', root: deb2, tags },
      { name: 'deb-1', distro: debDistro, executor: 'local', root: deb1, tags },
      { name: 'rpm-1', distro: rpmDistro, executor: 'local', root: rpm1, tags },
    ]);
    acts = createFleetActivities({
      ec2: aws.ec2,
      ssm: aws.ssm,
      s3,
      artifactsBucket,
      artifactsPrefix: '',
      hostsDir,
    });
    hosts = [
      ...(await acts.discoverHosts({ tags, distro: debDistro })),
      ...(await acts.discoverHosts({ tags, distro: rpmDistro })),
    ];
  }, 600_000);

  const formatOf = (h: Host) => (h.distro === debDistro ? 'deb' : 'rpm');
  const upgrade = (host: Host, version: string, extra: Partial<UpgradeInput> = {}): UpgradeInput => ({
    host,
    format: formatOf(host),
    packageName: 'widget',
    version,
    repo: formatOf(host) === 'deb' ? { ...repo.apt, keyUrl: repo.keyUrl } : { url: repo.yum.url, keyUrl: repo.keyUrl },
    logKey: `logs/fleet-${uid()}/${host.name}.log`,
    ...extra,
  });
  const installedFile = (host: Host) =>
    fs.readFileSync(path.join(host.root!, 'usr/share/widget/VERSION'), 'utf8').trim();
  const logText = async (key: string) =>
    (await s3.send(new GetObjectCommand({ Bucket: artifactsBucket, Key: key }))).Body!.transformToString();

  it('finds the three hosts by tags, with their roots, sorted by name', () => {
    expect(hosts.map((h) => `${h.name} ${h.executor} ${h.distro}`)).toEqual([
      `deb-1 local ${debDistro}`,
      `deb-2 local ${debDistro}`,
      `rpm-1 local ${rpmDistro}`,
    ]);
    expect(hosts.map((h) => h.root)).toEqual(['deb-1', 'deb-2', 'rpm-1'].map((n) => path.join(hostsDir, n)));
  });

  it('upgrades to an exact version, then a newer one, then rolls back; versions read back each time', async () => {
    for (const host of hosts) {
      expect(await acts.hostVersion({ host, packageName: 'widget', format: formatOf(host) })).toEqual({
        version: null,
      });
    }
    // 1.0.0-2 while 1.0.0-3 is the newest published: the exact version, not the latest.
    const first = await Promise.all(hosts.map((h) => acts.upgradeHost(upgrade(h, '1.0.0-2'))));
    expect(first.map((r) => [r.host, r.before, r.after])).toEqual(hosts.map((h) => [h.name, null, '1.0.0-2']));
    for (const host of hosts) {
      expect(installedFile(host)).toBe('1.0.0-2');
      expect((await acts.hostVersion({ host, packageName: 'widget', format: formatOf(host) })).version).toBe('1.0.0-2');
    }
    // The host reads the published repository with the published key, never the artifacts bucket.
    // One source per repository URL and suite, one keyring named after the key's fingerprint.
    const listDir = path.join(hosts[0].root!, 'etc/apt/sources.list.d');
    const lists = fs.readdirSync(listDir).filter((f) => f.startsWith('conveyor-'));
    expect(lists).toEqual([`${sourceIdFor(repo.apt.url, repo.apt.suite)}.list`]);
    expect(fs.readFileSync(path.join(listDir, lists[0]), 'utf8')).toMatch(
      new RegExp(
        `^deb \\[signed-by=/etc/apt/keyrings/conveyor-[0-9A-F]{40}\\.asc\\] ${repo.apt.url.replace(/[.]/g, '\\.')} ${repo.apt.suite} main\n$`,
      ),
    );
    const yumId = sourceIdFor(repo.yum.url);
    const yumRepo = fs.readFileSync(path.join(hosts[2].root!, `etc/yum.repos.d/${yumId}.repo`), 'utf8');
    expect(yumRepo).toContain(`[${yumId}]\n`);
    expect(yumRepo).toContain(`baseurl=${repo.yum.url}\n`);
    expect(yumRepo).toMatch(/^gpgcheck=1$/m);
    expect(yumRepo).toMatch(/^repo_gpgcheck=1$/m);
    expect(yumRepo).toMatch(/^gpgkey=file:\/\/\/etc\/pki\/rpm-gpg\/conveyor-[0-9A-F]{40}\.asc$/m);
    const log = await logText(first[0].logKey);
    expect(log).toMatch(/widget \(not installed\) installed, 1\.0\.0-2 wanted/);
    expect(log).toMatch(/Setting up widget \(1\.0\.0-2\)/);

    const second = await Promise.all(hosts.map((h) => acts.upgradeHost(upgrade(h, '1.0.0-3'))));
    expect(second.map((r) => [r.before, r.after])).toEqual(hosts.map(() => ['1.0.0-2', '1.0.0-3']));
    expect(hosts.map(installedFile)).toEqual(['1.0.0-3', '1.0.0-3', '1.0.0-3']);

    // Going back is a rollback only when asked for.
    const refused = await failureOf(acts.upgradeHost(upgrade(hosts[0], '1.0.0-2')));
    expect(refused.type).toBe('DowngradeRefused');
    expect(installedFile(hosts[0])).toBe('1.0.0-3');

    const back = await Promise.all(hosts.map((h) => acts.upgradeHost(upgrade(h, '1.0.0-2', { allowDowngrade: true }))));
    expect(back.map((r) => [r.before, r.after])).toEqual(hosts.map(() => ['1.0.0-3', '1.0.0-2']));
    for (const host of hosts) {
      expect(installedFile(host)).toBe('1.0.0-2');
      expect((await acts.hostVersion({ host, packageName: 'widget', format: formatOf(host) })).version).toBe('1.0.0-2');
    }

    // Idempotent: a host at the version is only reported on.
    const again = await acts.upgradeHost(upgrade(hosts[2], '1.0.0-2'));
    expect(again).toMatchObject({ before: '1.0.0-2', after: '1.0.0-2', changed: false });
    expect(await logText(again.logKey)).toMatch(/nothing to do/);
  });

  it('a version missing from the repository fails clearly and the host keeps its version', async () => {
    for (const host of [hosts[1], hosts[2]]) {
      const before = installedFile(host);
      const input = upgrade(host, '1.0.0-9');
      const failure = await failureOf(acts.upgradeHost(input));
      expect(failure.type).toBe('VersionNotPublished');
      expect(failure.nonRetryable).toBe(true);
      expect(failure.message).toContain(`host ${host.name}: widget 1.0.0-9 is not in the published repository`);
      expect(installedFile(host)).toBe(before);
      expect(await logText(input.logKey)).toMatch(/failed: host .* 1\.0\.0-9 is not in the published repository/);
    }
  });

  it('a repository read with another key is refused by the host', async () => {
    const other = await publicKeyOf(await otherSigningKey(tempDir('fleet-keys'), 'intruder'));
    const staging = parseS3Url(config.storage.staging).bucket;
    await s3.send(new PutObjectCommand({ Bucket: staging, Key: 'keys/intruder.asc', Body: other }));
    for (const host of [hosts[0], hosts[2]]) {
      await acts.upgradeHost(upgrade(host, '1.0.0-2', { allowDowngrade: true }));
      const input = upgrade(host, '1.0.0-3');
      input.repo.keyUrl = `${repo.bucketUrl}/keys/intruder.asc`;
      const failure = await failureOf(acts.upgradeHost(input));
      expect(failure.type).toBe('RepositoryUnavailable');
      expect(failure.message).toContain(`host ${host.name} cannot read the published repository`);
      expect(installedFile(host)).toBe('1.0.0-2');
    }
  });

  it('a host that stays on another version after a successful install fails with VersionMismatch', async () => {
    const root = await makeLocalHost(hostsDir, 'simulating', 'deb');
    // A misconfigured host: apt-get only simulates, reports success and changes nothing.
    fs.writeFileSync(path.join(root, 'etc/apt/apt.conf.d/99simulate'), 'APT::Get::Simulate "true";\n');
    const host: Host = {
      instanceId: 'i-0123456789abcdef0',
      name: 'simulating',
      distro: debDistro,
      executor: 'local',
      root,
    };
    const failure = await failureOf(acts.upgradeHost(upgrade(host, '1.0.0-3')));
    expect(failure.type).toBe('VersionMismatch');
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toMatch(/^host simulating: wanted widget 1\.0\.0-3, got none installed/);
  });

  it('refuses values that do not match their patterns before anything reaches a host', async () => {
    const bad: Partial<UpgradeInput>[] = [
      { packageName: 'widget; rm -rf /' },
      { version: '1.0.0-3 && id' },
      { version: '1.0.0' },
      { repo: { url: "http://127.0.0.1/x'y", suite: 'bookworm-unstable', keyUrl: repo.keyUrl } },
      { repo: { url: repo.apt.url, suite: 'bookworm unstable', keyUrl: repo.keyUrl } },
      { repo: { url: repo.apt.url, suite: repo.apt.suite, keyUrl: 'file:///etc/shadow' } },
    ];
    for (const b of bad) {
      expect((await failureOf(acts.upgradeHost({ ...upgrade(hosts[0], '1.0.0-3'), ...b }))).type).toBe('BadInput');
    }
    const outside: Host = { ...hosts[0], root: '/' };
    expect((await failureOf(acts.hostVersion({ host: outside, packageName: 'widget', format: 'deb' }))).type).toBe(
      'BadConfig',
    );
  });

  it('runOnHost reports exit codes and tails, uploads the log, and keeps env values as data', async () => {
    const host = hosts[0];
    const logKey = `logs/fleet-${uid()}/smoke.log`;
    const res = await acts.runOnHost({
      host,
      command:
        'echo "host=$CONVEYOR_HOST"; echo "note=$CONVEYOR_NOTE"; cat /usr/share/widget/VERSION; echo oops >&2; exit 3',
      env: { CONVEYOR_HOST: host.name, CONVEYOR_NOTE: "$(touch /pwned) `id` ' ;" },
      logKey,
    });
    expect(res.exitCode).toBe(3);
    expect(res.logKey).toBe(logKey);
    expect(res.tail).toContain('host=deb-1');
    expect(res.tail).toContain("note=$(touch /pwned) `id` ' ;");
    expect(res.tail).toContain('1.0.0-2');
    expect(res.tail).toContain('oops');
    expect(fs.existsSync(path.join(host.root!, 'pwned'))).toBe(false);
    const log = await logText(logKey);
    expect(log).toContain('host=deb-1');
    expect(log.startsWith('$ echo')).toBe(true);

    const ok = await acts.runOnHost({ host: hosts[2], command: 'rpm -q widget', env: {}, logKey: `${logKey}.2` });
    expect(ok).toMatchObject({ exitCode: 0 });
    expect(ok.tail.trim()).toBe('widget-1.0.0-2.noarch');

    const slow = await acts.runOnHost({ host, command: 'sleep 30', env: {}, logKey: `${logKey}.3`, timeoutSeconds: 1 });
    expect(slow).toMatchObject({ exitCode: 124, timedOut: true });
    expect(await logText(`${logKey}.3`)).toMatch(/timed out after 1 s/);
  });

  it('resetLocalHost removes a host; the next ensureLocalHost copies it afresh', async () => {
    const root = await makeLocalHost(hostsDir, 'reset-me', 'deb');
    fs.writeFileSync(path.join(root, 'root/state'), 'installed things');
    expect(await resetLocalHost(root)).toBe(true);
    expect(fs.existsSync(root)).toBe(false);
    expect(await resetLocalHost(root)).toBe(false);
    await makeLocalHost(hostsDir, 'reset-me', 'deb');
    expect(fs.existsSync(path.join(root, 'etc/debian_version'))).toBe(true);
    expect(fs.existsSync(path.join(root, 'root/state'))).toBe(false);
    const notAHost = tempDir('not-a-host');
    fs.writeFileSync(path.join(notAHost, 'keep'), '');
    await expect(resetLocalHost(notAHost)).rejects.toThrow(/is not a local host root/);
    expect(fs.existsSync(path.join(notAHost, 'keep'))).toBe(true);
  });

  it('cancellation kills the whole process tree inside the host', async () => {
    const env = new MockActivityEnvironment(undefined, { logger: quiet });
    const marker = `sleep 91${Math.floor(Math.random() * 9) + 1}`;
    const run = env.run(acts.runOnHost, {
      host: hosts[1],
      command: `(${marker}; echo late) & ${marker}; echo never`,
      env: {},
      logKey: `logs/fleet-${uid()}/cancelled.log`,
    });
    await waitFor(async () => (await leftovers(marker)).length >= 2);
    env.cancel();
    await expect(run).rejects.toBeInstanceOf(CancelledFailure);
    await waitFor(async () => (await leftovers(marker)).length === 0);
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}
