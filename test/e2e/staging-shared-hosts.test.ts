// Two repositories through the whole chain onto the same staging hosts (issue 13): acme/widget-… and
// acme/tally-… (the sample project renamed) publish into one channel, so one apt suite and one yum
// repository, and deploy to the same deb and rpm host. Their first runs go at the same time, so
// the order on the hosts is whichever takes the deploy lock first; then each in turn ships a build
// whose binary fails the smoke check and is rolled back, leaving the other package alone. Every
// run goes webhook-decision → test → package → publish → deploy (real apt-get and dnf in the host
// roots) → verify, on real workers. The host ends with one apt source per repository URL and suite,
// one yum .repo per baseurl and one keyring, which apt accepts (a source per package would make apt
// refuse the host's whole source list: "Conflicting values set for option Signed-By").
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { PipelineResult } from '../../common/types';
import { abortSignal } from '../../workflows/messages';
import { createFleetActivities, type FleetActivities } from '../../activities/fleet';
import { parseS3Url, type ConveyorConfig } from '../../config/conveyor';
import { makeStagingHosts } from '../helpers/hosts';
import {
  awsFor,
  clientFor,
  DEB_AND_RPM,
  startSampleRun,
  startWorkers,
  tempDir,
  testConfig,
  uid,
  waitForStatus,
} from '../helpers/stack';

/** The sample project as another project: every `widget` in names and contents becomes `name`. */
function renameSample(name: string, brokenVersion = false) {
  return (dir: string) => {
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        if (e.name === '.git') continue;
        const from = path.join(d, e.name);
        const to = path.join(d, e.name.replaceAll('widget', name));
        if (e.isDirectory()) walk(from);
        else {
          const text = fs.readFileSync(from, 'utf8');
          const mode = fs.statSync(from).mode & 0o777;
          fs.rmSync(from);
          fs.writeFileSync(to, text.replaceAll('widget', name));
          fs.chmodSync(to, mode);
        }
      }
    };
    walk(dir);
    if (brokenVersion) breakVersion(path.join(dir, 'bin', name));
  };
}

/** `--version` exits 1 (the unit tests only call `add`): the build packages, then fails smoke. */
function breakVersion(bin: string) {
  const text = fs.readFileSync(bin, 'utf8');
  fs.writeFileSync(bin, text.replace(/--version\) echo [^;]*;;/, '--version) echo "broken" >&2; exit 1 ;;'));
}

describe('staging: two repositories through the whole chain onto the same hosts', () => {
  let config: ConveyorConfig;
  let client: Client;
  let workers: { stop(): Promise<void> };
  let fleet: FleetActivities;
  let deb: string;
  let rpm: string;
  const roots: Record<string, string> = {};
  const bares: Record<string, string> = {};
  const works: Record<string, string> = {};
  const role = `two-${uid()}`;
  // One channel of their own, shared by both: one apt suite and one yum repository for the two.
  const channel = `two${uid()}`;
  // Repository names of their own: each branch's build numbers live in an entity workflow on the
  // test server, polled only while this file's workers run (another file's acme/widget would hang).
  const WIDGET = `acme/widget-${uid()}`;
  const TALLY = `acme/tally-${uid()}`;
  const names: Record<string, string> = { [WIDGET]: 'widget', [TALLY]: 'tally' };

  beforeAll(async () => {
    const dir = tempDir('staging-two');
    const hostsDir = path.join(dir, 'hosts');
    for (const repo of Object.keys(names)) {
      bares[repo] = path.join(dir, `${names[repo]}.git`);
      works[repo] = path.join(dir, `${names[repo]}-work`);
    }
    config = testConfig(
      Object.entries(names).map(([repo, pkg]) => ({
        name: repo,
        cloneUrl: bares[repo],
        branches: [{ match: 'main', channel }],
        steps: { unit: 'make test', package: 'make package', smoke: `${pkg} --version` },
        more: { packages: [pkg], staging: { tags: { Environment: 'staging', Role: role }, batchSize: 1 } },
      })),
      { fleet: { hostsDir } },
      DEB_AND_RPM,
    );
    [deb, rpm] = Object.keys(config.distros);
    const aws = await awsFor(config);
    Object.assign(
      roots,
      await makeStagingHosts(aws.ec2, config, hostsDir, { Environment: 'staging', Role: role }, 'shared'),
    );
    fleet = createFleetActivities({
      ec2: aws.ec2,
      ssm: aws.ssm,
      s3: aws.s3,
      artifactsBucket: parseS3Url(config.storage.artifacts).bucket,
      artifactsPrefix: '',
      hostsDir,
    });
    client = await clientFor(config);
    workers = await startWorkers(config);
  }, 600_000);

  afterAll(async () => {
    await workers?.stop();
    await client?.connection.close();
  });

  const start = (repository: string, message: string, broken = false) =>
    startSampleRun(config, client, {
      repository,
      bare: bares[repository],
      work: works[repository],
      message,
      mutate:
        repository === WIDGET
          ? broken
            ? (d) => breakVersion(path.join(d, 'bin/widget'))
            : undefined
          : renameSample('tally', broken),
    });
  /** name → version installed on the deb host and the rpm host, as the hosts' dpkg and rpm say. */
  const installed = async () => {
    const out: Record<string, string> = {};
    for (const pkg of Object.values(names)) {
      const v: string[] = [];
      for (const [distro, format] of [
        [deb, 'deb'],
        [rpm, 'rpm'],
      ] as const) {
        const [host] = await fleet.discoverHosts({ tags: { Environment: 'staging', Role: role }, distro });
        v.push(`${format} ${(await fleet.hostVersion({ host, packageName: pkg, format })).version ?? '-'}`);
      }
      out[pkg] = v.join(', ');
    }
    return out;
  };
  const conveyorFiles = (root: string, dir: string) =>
    fs
      .readdirSync(path.join(root, dir))
      .filter((f) => f.startsWith('conveyor-'))
      .sort();

  it('deploys both, whatever the order; then rolls back each without touching the other', async () => {
    const first = await Promise.all([start(WIDGET, 'widget one'), start(TALLY, 'tally one')]);
    const results = (await Promise.all(
      first.map((r) => client.workflow.getHandle(r.workflowId).result()),
    )) as PipelineResult[];
    for (const r of results)
      expect([r.status, r.stages.filter((s) => s.state !== 'succeeded')]).toEqual(['succeeded', []]);
    const [widget1, tally1] = results.map((r) => r.version);
    expect(await installed()).toEqual({
      widget: `deb ${widget1}, rpm ${widget1}`,
      tally: `deb ${tally1}, rpm ${tally1}`,
    });

    // One source per URL and suite, one keyring, one .repo per baseurl: apt reads the list.
    const lists = conveyorFiles(roots[deb], 'etc/apt/sources.list.d');
    expect(lists).toHaveLength(1);
    const source = fs.readFileSync(path.join(roots[deb], 'etc/apt/sources.list.d', lists[0]), 'utf8');
    expect(source.trim().split('\n')).toHaveLength(1);
    expect(source).toMatch(new RegExp(` bookworm-${channel} main\\n$`));
    expect(conveyorFiles(roots[deb], 'etc/apt/keyrings')).toHaveLength(1);
    expect(conveyorFiles(roots[rpm], 'etc/yum.repos.d')).toHaveLength(1);

    // Each breaks in turn: its own deploy rolls its own package back; the other stays.
    for (const [repo, pkg] of Object.entries(names)) {
      const { workflowId } = await start(repo, `${pkg} broken`, true);
      const status = await waitForStatus(client, workflowId, 'awaiting-operator', 240_000);
      const failed = status.stages.filter((s) => s.state === 'failed');
      expect(failed.map((s) => s.name)).toContain('deploy');
      expect(failed[0].error).toMatch(/smoke exited with 1 on|rolled back/);
      await client.workflow.getHandle(workflowId).signal(abortSignal, { reason: 'smoke failed' });
      // Wait for both distros' deploys to settle (one may still be rolling back when the other fails).
      await client.workflow
        .getHandle(workflowId)
        .result()
        .catch(() => undefined);
      expect(await installed()).toEqual({
        widget: `deb ${widget1}, rpm ${widget1}`,
        tally: `deb ${tally1}, rpm ${tally1}`,
      });
    }
  }, 900_000);
});
