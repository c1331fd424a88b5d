// prepareHost against real local hosts (a Debian root with apt, an rpm root with dnf) and a signed
// repository published to the staging bucket: it reports the installed version of every package
// of a deploy, refreshes the host's metadata for the published repository (source and keyring
// installed, lists updated) and installs nothing; a repository read with another key, or a version
// not published, fails exactly as upgradeHost fails for the same input; an upgrade after it works
// and does not read the lists again, unless something was published since. `refresh: false`
// reads the versions only.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  createFleetActivities,
  sourceIdFor,
  type FleetActivities,
  type Host,
  type PrepareHostInput,
  type UpgradeInput,
} from '../../activities/fleet';
import { hostCommand } from '../../activities/fleet/local-host';
import { publicKeyOf } from '../../activities/repository';
import { parseS3Url, type ConveyorConfig } from '../../config/conveyor';
import { failureOf, makeLocalHost, publishStaging, type StagingRepo } from '../helpers/hosts';
import { otherSigningKey } from '../helpers/packages';
import { awsFor, DEB_AND_RPM, tempDir, testConfig, uid } from '../helpers/stack';

/** Every file under `dir` with its size and mtime: what a step must leave as it was. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!fs.existsSync(dir)) return out;
  for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    const st = fs.statSync(file);
    out[path.relative(dir, file)] = `${st.size} ${st.mtimeMs}`;
  }
  return out;
}

describe('fleet: prepareHost on local hosts', () => {
  let config: ConveyorConfig;
  let s3: S3Client;
  let artifactsBucket: string;
  let acts: FleetActivities;
  let repo: StagingRepo;
  let deb: Host;
  let rpm: Host;
  let packagesDir: string;

  beforeAll(async () => {
    config = testConfig([], {}, DEB_AND_RPM);
    const [debDistro, rpmDistro] = Object.keys(config.distros);
    const aws = await awsFor(config);
    s3 = aws.s3;
    artifactsBucket = parseS3Url(config.storage.artifacts).bucket;
    const hostsDir = tempDir('prepare-hosts');
    const packages = (packagesDir = tempDir('prepare-packages'));
    const [published, debRoot, rpmRoot] = await Promise.all([
      publishStaging(config, s3, packages, 'widget', ['1.0.0-1', '1.0.0-2']),
      makeLocalHost(hostsDir, 'deb-1', 'deb'),
      makeLocalHost(hostsDir, 'rpm-1', 'rpm'),
    ]);
    // A second package of the same deploy, published at the new version only.
    await publishStaging(config, s3, packages, 'gadget', ['1.0.0-2']);
    repo = published;
    deb = { instanceId: 'i-0000000000000d001', name: 'deb-1', distro: debDistro, executor: 'local', root: debRoot };
    rpm = { instanceId: 'i-0000000000000r001', name: 'rpm-1', distro: rpmDistro, executor: 'local', root: rpmRoot };
    acts = createFleetActivities({ ec2: aws.ec2, ssm: aws.ssm, s3, artifactsBucket, artifactsPrefix: '', hostsDir });
    // Both hosts run widget 1.0.0-1 from the repository, as after an earlier deploy.
    for (const host of [deb, rpm]) await acts.upgradeHost(upgrade(host, '1.0.0-1'));
  }, 600_000);

  const formatOf = (h: Host) => (h === deb ? 'deb' : 'rpm');
  const repoFor = (h: Host) =>
    formatOf(h) === 'deb' ? { ...repo.apt, keyUrl: repo.keyUrl } : { url: repo.yum.url, keyUrl: repo.keyUrl };
  const upgrade = (host: Host, version: string): UpgradeInput => ({
    host,
    format: formatOf(host),
    packageName: 'widget',
    version,
    repo: repoFor(host),
    logKey: `logs/prepare-${uid()}/${host.name}-widget.log`,
  });
  const prepare = (host: Host, version: string, packages = ['widget', 'gadget']): PrepareHostInput => ({
    host,
    format: formatOf(host),
    packages,
    version,
    repo: repoFor(host),
    logKey: `logs/prepare-${uid()}/${host.name}-prepare.log`,
  });
  /** What the host's package manager says is installed (dpkg, rpm), read in the host. */
  const installed = (host: Host): string => {
    const query =
      formatOf(host) === 'deb'
        ? "dpkg-query -W -f='${Package} ${db:Status-Status} ${Version}\\n' widget gadget 2>/dev/null; true"
        : "rpm -q --qf '%{NAME} %{VERSION}-%{RELEASE}\\n' widget gadget; true";
    const cmd = hostCommand(host.root!, query);
    return spawnSync(cmd.file, cmd.args, { env: cmd.env, encoding: 'utf8' }).stdout.trim();
  };
  const logText = async (key: string) =>
    (await s3.send(new GetObjectCommand({ Bucket: artifactsBucket, Key: key }))).Body!.transformToString();

  it('reports every package version, refreshes the metadata and installs nothing', async () => {
    const debBefore = installed(deb);
    const rpmBefore = installed(rpm);
    expect(debBefore).toBe('widget installed 1.0.0-1');
    expect(rpmBefore).toBe('widget 1.0.0-1\npackage gadget is not installed');
    for (const host of [deb, rpm]) {
      const input = prepare(host, '1.0.0-2');
      const r = await acts.prepareHost(input);
      expect(r).toEqual({
        host: host.name,
        versions: { widget: '1.0.0-1', gadget: null },
        refreshed: true,
        logKey: input.logKey,
      });
      const log = await logText(input.logKey);
      expect(log).toMatch(/widget 1\.0\.0-1, gadget \(not installed\) installed, 1\.0\.0-2 wanted/);
      expect(log).toMatch(/prepared: nothing installed/);
    }
    // Nothing installed, nothing removed.
    expect(installed(deb)).toBe(debBefore);
    expect(installed(rpm)).toBe(rpmBefore);
    // The host's own lists now offer the new version: the update happened in the host.
    const lists = path.join(deb.root!, 'var/lib/apt/lists');
    const ours = fs.readdirSync(lists).filter((f) => f.includes(repo.apt.suite) && f.endsWith('_Packages'));
    expect(ours.length).toBeGreaterThan(0);
    expect(ours.map((f) => fs.readFileSync(path.join(lists, f), 'utf8')).join('\n')).toMatch(
      /^Package: gadget\n(?:.+\n)*Version: 1\.0\.0-2$/m,
    );
    expect(fs.readdirSync(path.join(deb.root!, 'etc/apt/sources.list.d'))).toContain(
      `${sourceIdFor(repo.apt.url, repo.apt.suite)}.list`,
    );
    expect(fs.existsSync(path.join(rpm.root!, `etc/yum.repos.d/${sourceIdFor(repo.yum.url)}.repo`))).toBe(true);

    // Then the upgrade proper, which still verifies the repository with the key; on the deb host
    // the lists it finds are those it just verified, so it does not read them again. A prepare at
    // the version it installed reports and refreshes nothing.
    for (const host of [deb, rpm]) {
      const input = upgrade(host, '1.0.0-2');
      expect(await acts.upgradeHost(input)).toMatchObject({ before: '1.0.0-1', after: '1.0.0-2' });
      if (host === deb) expect(await logText(input.logKey)).toMatch(/are the ones just verified: not read again/);
      const again = await acts.prepareHost(prepare(host, '1.0.0-2', ['widget']));
      expect(again).toMatchObject({ versions: { widget: '1.0.0-2' }, refreshed: false });
      expect(await logText(again.logKey)).toMatch(/nothing to refresh/);
    }
  });

  it('refuses a repository signed by another key with the error upgradeHost gives, and changes nothing', async () => {
    const other = await publicKeyOf(await otherSigningKey(tempDir('prepare-keys'), 'intruder'));
    const staging = parseS3Url(config.storage.staging).bucket;
    await s3.send(new PutObjectCommand({ Bucket: staging, Key: 'keys/intruder.asc', Body: other }));
    for (const host of [deb, rpm]) {
      const configDir = path.join(host.root!, formatOf(host) === 'deb' ? 'etc/apt' : 'etc/yum.repos.d');
      const before = snapshot(configDir);
      const intruder = { ...repoFor(host), keyUrl: `${repo.bucketUrl}/keys/intruder.asc` };
      const prepared = await failureOf(acts.prepareHost({ ...prepare(host, '1.0.0-1'), repo: intruder }));
      const upgraded = await failureOf(
        acts.upgradeHost({ ...upgrade(host, '1.0.0-1'), repo: intruder, allowDowngrade: true }),
      );
      expect(prepared.type).toBe('RepositoryUnavailable');
      expect(prepared.nonRetryable).toBe(true);
      expect(prepared.message.split('\n')[0]).toBe(upgraded.message.split('\n')[0]);
      expect(prepared.message).toContain(`host ${host.name} cannot read the published repository`);
      expect(snapshot(configDir)).toEqual(before);
    }
  });

  it('a version not published fails as upgradeHost fails, naming the missing package', async () => {
    for (const host of [deb, rpm]) {
      const only = await failureOf(acts.prepareHost(prepare(host, '1.0.0-1')));
      expect(only.type).toBe('VersionNotPublished');
      expect(only.message.split('\n')[0]).toBe(
        `host ${host.name}: gadget 1.0.0-1 is not in the published repository ` +
          `${host === deb ? `${repo.apt.url} ${repo.apt.suite}` : repo.yum.url}; the host keeps its version`,
      );
      const both = await failureOf(acts.prepareHost(prepare(host, '1.0.0-9')));
      const upgraded = await failureOf(acts.upgradeHost(upgrade(host, '1.0.0-9')));
      expect(both.type).toBe(upgraded.type);
      expect(both.message.split('\n')[0]).toMatch(/: widget, gadget 1\.0\.0-9 are not in the published repository /);
      expect(upgraded.message.split('\n')[0]).toMatch(/: widget 1\.0\.0-9 is not in the published repository /);
    }
    expect(installed(deb)).toBe('widget installed 1.0.0-2');
  });

  it('refuses values that do not match their patterns before anything reaches a host', async () => {
    const bad: Partial<PrepareHostInput>[] = [
      { packages: ['widget; rm -rf /'] },
      { packages: ['widget gadget'] },
      { packages: ['*'] },
      { packages: [] },
      { packages: ['widget', 'widget'] },
      { version: '1.0.0-3 && id' },
      { repo: { url: "http://127.0.0.1/x'y", suite: 'bookworm-unstable', keyUrl: repo.keyUrl } },
      { repo: { url: repo.apt.url, suite: 'bookworm unstable', keyUrl: repo.keyUrl } },
      { repo: { url: repo.apt.url, suite: repo.apt.suite, keyUrl: 'file:///etc/shadow' } },
      { format: 'tgz' as never },
    ];
    for (const b of bad) {
      expect((await failureOf(acts.prepareHost({ ...prepare(deb, '1.0.0-2'), ...b }))).type).toBe('BadInput');
    }
  });

  it('an upgrade after a prepare still reads what was published since: lists are never trusted stale', async () => {
    // The deb host's lists are refreshed for gadget, then widget 1.0.0-3 is published.
    expect(await acts.prepareHost(prepare(deb, '1.0.0-2', ['gadget']))).toMatchObject({ refreshed: true });
    await publishStaging(config, s3, packagesDir, 'widget', ['1.0.0-3']);
    const input = upgrade(deb, '1.0.0-3');
    expect(await acts.upgradeHost(input)).toMatchObject({ before: '1.0.0-2', after: '1.0.0-3' });
    const log = await logText(input.logKey);
    expect(log).not.toMatch(/not read again/);
    expect(log).toMatch(/Setting up widget \(1\.0\.0-3\)/);
    expect(installed(deb)).toBe('widget installed 1.0.0-3');
  });

  it('refresh: false reads the versions only: no key fetched, nothing written, nothing checked', async () => {
    const before = {
      apt: snapshot(path.join(deb.root!, 'etc/apt')),
      lists: snapshot(path.join(deb.root!, 'var/lib/apt/lists')),
    };
    // A version never published and a key URL that does not exist: neither is looked at.
    const input = {
      ...prepare(deb, '1.0.0-9', ['widget', 'gadget']),
      repo: { ...repoFor(deb), keyUrl: `${repo.bucketUrl}/keys/missing.asc` },
      refresh: false,
    };
    expect(await acts.prepareHost(input)).toEqual({
      host: deb.name,
      versions: { widget: '1.0.0-3', gadget: null },
      refreshed: false,
      logKey: input.logKey,
    });
    expect(await logText(input.logKey)).toMatch(/versions only/);
    expect({
      apt: snapshot(path.join(deb.root!, 'etc/apt')),
      lists: snapshot(path.join(deb.root!, 'var/lib/apt/lists')),
    }).toEqual(before);
  });

  it('a key that cannot be fetched makes it read versions only; the upgrade that needs the key fails for it', async () => {
    const missing = { ...repoFor(deb), keyUrl: `${repo.bucketUrl}/keys/missing.asc` };
    const lists = snapshot(path.join(deb.root!, 'var/lib/apt/lists'));
    // At the version already: nothing needs the key, as upgradeHost alone would need nothing.
    const current = { ...prepare(deb, '1.0.0-3', ['widget']), repo: missing };
    expect(await acts.prepareHost(current)).toEqual({
      host: deb.name,
      versions: { widget: '1.0.0-3' },
      refreshed: false,
      logKey: current.logKey,
    });
    expect(await acts.upgradeHost({ ...upgrade(deb, '1.0.0-3'), repo: missing })).toMatchObject({ changed: false });
    // Not at the version: the prepare still succeeds, noting why it read versions only, and the
    // upgrade fails with the key's own error.
    const behind = { ...prepare(deb, '1.0.0-4', ['widget']), repo: missing };
    expect(await acts.prepareHost(behind)).toMatchObject({ versions: { widget: '1.0.0-3' }, refreshed: false });
    expect(await logText(behind.logKey)).toContain(
      `cannot use the repository key ${missing.keyUrl}: HTTP 404: versions only, an upgrade of this host fetches the key itself`,
    );
    const upgraded = await failureOf(acts.upgradeHost({ ...upgrade(deb, '1.0.0-4'), repo: missing }));
    expect(upgraded.type).toBe('RepositoryUnavailable');
    expect(upgraded.message).toContain(`cannot use the repository key ${missing.keyUrl}: HTTP 404`);
    expect(snapshot(path.join(deb.root!, 'var/lib/apt/lists'))).toEqual(lists);
    expect(installed(deb)).toBe('widget installed 1.0.0-3');
  });
});
