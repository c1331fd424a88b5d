// Staging hosts are EC2 instances found by tags (shared/DESIGN.md: the 2015 chain's AWS part): every
// tag of the repository's `staging.tags`, plus Distro, running only. DescribeInstances pages (by
// reservation); every page is read. Sorted by name so the deploy stage's batches are the same on
// every attempt and replay. An empty answer is not an error here: the stage decides.
import { DescribeInstancesCommand, type EC2Client, type Filter, type Instance } from '@aws-sdk/client-ec2';
import { FleetFailure, fleetFailure } from './failures';
import type { DiscoverHostsInput, Host, HostExecutor } from './types';

/** The tags Conveyor reads on an instance, besides the ones a repository filters by. */
export const HostTag = {
  Name: 'Name',
  Distro: 'Distro',
  /** local | ssm | ssh; default ssm. */
  Executor: 'ConveyorExecutor',
  /** local: the host's root directory on the worker's machine. */
  Root: 'ConveyorHostRoot',
  /** ssh: host[:port] to connect to instead of the private IP. */
  SshAddress: 'ConveyorSshAddress',
} as const;

const EXECUTORS: readonly HostExecutor[] = ['local', 'ssm', 'ssh'];

export async function discoverHosts(
  ec2: EC2Client,
  input: DiscoverHostsInput,
  opts: { pageSize?: number; signal?: AbortSignal; onPage?: (page: number, found: number) => void } = {},
): Promise<Host[]> {
  const tags = { ...input.tags, [HostTag.Distro]: input.distro };
  const filters: Filter[] = [
    ...Object.entries(tags).map(([k, v]) => ({ Name: `tag:${k}`, Values: [v] })),
    { Name: 'instance-state-name', Values: ['running'] },
  ];
  const hosts: Host[] = [];
  let token: string | undefined;
  let page = 0;
  do {
    const res = await ec2.send(
      new DescribeInstancesCommand({ Filters: filters, MaxResults: opts.pageSize ?? 100, NextToken: token }),
      { abortSignal: opts.signal },
    );
    for (const instance of (res.Reservations ?? []).flatMap((r) => r.Instances ?? [])) {
      hosts.push(toHost(instance, input.distro));
    }
    opts.onPage?.(++page, hosts.length);
    token = res.NextToken || undefined;
  } while (token);
  const unique = [...new Map(hosts.map((h) => [h.instanceId, h])).values()];
  return unique.sort((a, b) =>
    a.name === b.name ? a.instanceId.localeCompare(b.instanceId) : a.name < b.name ? -1 : 1,
  );
}

function toHost(instance: Instance, distro: string): Host {
  const tag = (key: string) => instance.Tags?.find((t) => t.Key === key)?.Value;
  const instanceId = instance.InstanceId ?? '';
  const executor = (tag(HostTag.Executor) ?? 'ssm') as HostExecutor;
  if (!EXECUTORS.includes(executor)) {
    throw fleetFailure(
      FleetFailure.BadConfig,
      `instance ${instanceId} has ${HostTag.Executor}=${JSON.stringify(executor)}; expected one of ${EXECUTORS.join(', ')}`,
    );
  }
  const host: Host = { instanceId, name: tag(HostTag.Name) ?? instanceId, distro, executor };
  if (executor === 'local') {
    const root = tag(HostTag.Root);
    if (root) host.root = root;
  }
  if (executor === 'ssh') {
    const address = tag(HostTag.SshAddress) ?? instance.PrivateIpAddress ?? instance.PrivateDnsName;
    if (address) host.address = address;
  }
  return host;
}
