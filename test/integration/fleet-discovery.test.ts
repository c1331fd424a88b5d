// Host discovery against the test EC2 endpoint: every page of DescribeInstances is read (12 hosts,
// pages of 5), every tag and the distro filter, stopped instances are left out, and the executor,
// root and SSH address come from the instance's tags.
import {
  DeleteTagsCommand,
  StopInstancesCommand,
  type DescribeInstancesCommandInput,
  type EC2Client,
} from '@aws-sdk/client-ec2';
import { SSMClient } from '@aws-sdk/client-ssm';
import { ApplicationFailure } from '@temporalio/common';
import { createFleetActivities, type FleetActivities } from '../../activities/fleet';
import { registerHosts } from '../helpers/hosts';
import { awsFor, testConfig, testEnv, uid } from '../helpers/stack';

describe('fleet: discovering staging hosts by EC2 tags', () => {
  let ec2: EC2Client;
  let acts: FleetActivities;
  const calls: DescribeInstancesCommandInput[] = [];
  const role = `widget-${uid()}`;
  const distro = `bookworm-${uid()}`;

  beforeAll(async () => {
    const config = testConfig([]);
    const aws = await awsFor(config);
    ec2 = aws.ec2;
    // Every DescribeInstances request the activity makes, to see the pages it asked for.
    const counting = {
      send: (command: { input: unknown; constructor: { name: string } }, opts?: unknown) => {
        if (command.constructor.name === 'DescribeInstancesCommand')
          calls.push(command.input as DescribeInstancesCommandInput);
        return (ec2.send as (c: unknown, o?: unknown) => Promise<unknown>)(command, opts);
      },
    } as unknown as EC2Client;
    acts = createFleetActivities({
      ec2: counting,
      ssm: new SSMClient({
        region: 'us-east-1',
        endpoint: testEnv().aws,
        credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
      }),
      s3: aws.s3,
      artifactsBucket: 'unused',
      artifactsPrefix: '',
      discoveryPageSize: 5,
    });
    const staging = { Environment: 'staging', Role: role };
    // Registered out of order: the result is sorted by name.
    const names = Array.from({ length: 12 }, (_, i) => `web-${String(12 - i).padStart(2, '0')}`);
    await registerHosts(
      ec2,
      names.map((name, i) => ({
        name,
        distro,
        executor: i % 3 === 0 ? 'ssh' : 'ssm',
        tags: staging,
        ...(i % 3 === 0 ? { address: `10.0.0.${i}:2222` } : {}),
      })),
    );
    // Not matching: production, another distro, another role; and a stopped staging host.
    await registerHosts(ec2, [
      { name: 'prod-01', distro, executor: 'ssm', tags: { Environment: 'production', Role: role } },
      { name: 'other-distro', distro: `${distro}x`, executor: 'ssm', tags: staging },
      { name: 'other-role', distro, executor: 'ssm', tags: { Environment: 'staging', Role: `${role}x` } },
    ]);
    const [stopped] = await registerHosts(ec2, [{ name: 'web-00', distro, executor: 'ssm', tags: staging }]);
    await ec2.send(new StopInstancesCommand({ InstanceIds: [stopped] }));
  });

  it('reads every page and keeps only running hosts with every tag and the distro, sorted by name', async () => {
    calls.length = 0;
    const hosts = await acts.discoverHosts({ tags: { Environment: 'staging', Role: role }, distro });
    expect(hosts.map((h) => h.name)).toEqual(
      Array.from({ length: 12 }, (_, i) => `web-${String(i + 1).padStart(2, '0')}`),
    );
    expect(new Set(hosts.map((h) => h.instanceId)).size).toBe(12);
    expect(calls.length).toBe(3);
    expect(calls.map((c) => c.MaxResults)).toEqual([5, 5, 5]);
    expect(calls[0].NextToken).toBeUndefined();
    expect(calls[1].NextToken).toBeTruthy();
    expect(calls[0].Filters).toEqual([
      { Name: 'tag:Environment', Values: ['staging'] },
      { Name: 'tag:Role', Values: [role] },
      { Name: 'tag:Distro', Values: [distro] },
      { Name: 'instance-state-name', Values: ['running'] },
    ]);
    // web-12 was registered first (i = 0): an ssh host with its address from ConveyorSshAddress.
    expect(hosts.find((h) => h.name === 'web-12')).toMatchObject({ executor: 'ssh', address: '10.0.0.0:2222', distro });
    expect(hosts.find((h) => h.name === 'web-11')).toEqual({
      instanceId: expect.stringMatching(/^i-/),
      name: 'web-11',
      distro,
      executor: 'ssm',
    });
  });

  it('answers [] when no host matches (the deploy stage decides what that means)', async () => {
    expect(await acts.discoverHosts({ tags: { Role: `${role}-none` }, distro })).toEqual([]);
  });

  it('defaults to ssm, takes local roots from tags, and refuses an unknown executor', async () => {
    const d = `el9-${uid()}`;
    const [untagged] = await registerHosts(ec2, [
      { name: 'plain', distro: d, executor: 'ssm', tags: { Role: role } },
      { name: 'local', distro: d, executor: 'local', root: '/var/lib/conveyor/hosts/local', tags: { Role: role } },
    ]);
    await ec2.send(new DeleteTagsCommand({ Resources: [untagged], Tags: [{ Key: 'ConveyorExecutor' }] }));
    const hosts = await acts.discoverHosts({ tags: { Role: role }, distro: d });
    expect(hosts.map((h) => [h.name, h.executor, h.root])).toEqual([
      ['local', 'local', '/var/lib/conveyor/hosts/local'],
      ['plain', 'ssm', undefined],
    ]);

    const bad = `el9-${uid()}`;
    await registerHosts(ec2, [{ name: 'odd', distro: bad, executor: 'telnet' as 'ssh', tags: { Role: role } }]);
    const err = await acts.discoverHosts({ tags: { Role: role }, distro: bad }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('BadConfig');
    expect((err as ApplicationFailure).message).toMatch(/ConveyorExecutor="telnet"/);
  });
});
