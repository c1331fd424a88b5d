// Provisions the local AWS endpoint from the two config files: the buckets of conveyor.yml
// `storage` (the repository buckets readable anonymously, as apt and dnf read), and staging
// instances per distro, tagged so the deploy stage finds them through DescribeInstances.
// Idempotent: run at every start (moto keeps its state in memory).
import { DescribeImagesCommand, DescribeInstancesCommand, RunInstancesCommand, type Tag } from '@aws-sdk/client-ec2';
import { CreateBucketCommand, HeadBucketCommand, PutBucketPolicyCommand } from '@aws-sdk/client-s3';
import path from 'node:path';
import type { AwsClients } from '../../activities/storage/s3';
import { parseS3Url, type ConveyorConfig } from '../../config/conveyor';
import type { DevConfig } from '../../config/temporal-dev';

export interface ProvisionedHost {
  instanceId: string;
  name: string;
  distro: string;
  root: string;
}

export async function provisionBuckets(
  aws: AwsClients,
  config: ConveyorConfig,
  publicRoles: string[],
): Promise<string[]> {
  // The bucket URLs only: `storage` also holds settings (publicUrls, keepGenerationsHours, …).
  const roles = (['artifacts', 'staging', 'production'] as const).map((r) => [r, config.storage[r]] as const);
  const made: string[] = [];
  for (const [role, url] of roles) {
    const { bucket } = parseS3Url(url);
    if (made.includes(bucket)) continue;
    const exists = await aws.s3.send(new HeadBucketCommand({ Bucket: bucket })).then(
      () => true,
      () => false,
    );
    if (!exists) await aws.s3.send(new CreateBucketCommand({ Bucket: bucket }));
    if (publicRoles.includes(role)) {
      const policy = {
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'AnonymousRead',
            Effect: 'Allow',
            Principal: '*',
            Action: 's3:GetObject',
            Resource: `arn:aws:s3:::${bucket}/*`,
          },
        ],
      };
      await aws.s3.send(new PutBucketPolicyCommand({ Bucket: bucket, Policy: JSON.stringify(policy) }));
    }
    made.push(bucket);
  }
  return made;
}

export async function provisionHosts(
  aws: AwsClients,
  config: ConveyorConfig,
  dev: DevConfig,
): Promise<ProvisionedHost[]> {
  if (dev.aws.hosts.perDistro === 0) return [];
  const images = await aws.ec2.send(new DescribeImagesCommand({}));
  const imageId = images.Images?.[0]?.ImageId;
  if (!imageId) throw new Error('the local EC2 endpoint offers no image to start instances from');
  const hosts: ProvisionedHost[] = [];
  for (const distro of Object.keys(config.distros)) {
    // Tags every repository using this distro filters its staging hosts by.
    const repoTags = Object.assign(
      {},
      ...config.repositories.filter((r) => r.distros.includes(distro)).map((r) => r.staging?.tags ?? {}),
    ) as Record<string, string>;
    for (let n = 1; n <= dev.aws.hosts.perDistro; n++) {
      const name = `staging-${distro}-${n}`;
      // The workers accept local roots only inside the config's fleet.hostsDir: put them there.
      const root = path.join(config.fleet?.hostsDir ?? path.join(dev.dataDir, 'hosts'), name);
      const found = await aws.ec2.send(
        new DescribeInstancesCommand({
          Filters: [
            { Name: 'tag:ConveyorLocalHost', Values: [name] },
            { Name: 'instance-state-name', Values: ['running'] },
          ],
        }),
      );
      const existing = found.Reservations?.flatMap((r) => r.Instances ?? [])[0];
      if (existing?.InstanceId) {
        hosts.push({ instanceId: existing.InstanceId, name, distro, root });
        continue;
      }
      const tags: Tag[] = Object.entries({
        ...dev.aws.hosts.tags,
        ...repoTags,
        Name: name,
        Distro: distro,
        ConveyorExecutor: 'local',
        ConveyorHostRoot: root,
        ConveyorLocalHost: name,
      }).map(([Key, Value]) => ({ Key, Value }));
      const run = await aws.ec2.send(
        new RunInstancesCommand({
          ImageId: imageId,
          MinCount: 1,
          MaxCount: 1,
          InstanceType: 't3.micro',
          TagSpecifications: [{ ResourceType: 'instance', Tags: tags }],
        }),
      );
      const id = run.Instances?.[0]?.InstanceId;
      if (!id) throw new Error(`RunInstances returned no instance for ${name}`);
      hosts.push({ instanceId: id, name, distro, root });
    }
  }
  return hosts;
}
