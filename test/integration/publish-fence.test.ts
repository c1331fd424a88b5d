// Fencing of publishes: a publisher whose lease on the channel's lock has passed must not switch
// what readers see. The lock entity (the real repositoryLock workflow on the dev server) holds a
// lease the test chooses; the publisher checks it right before the first signed file.
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { leaseFence } from '../../activities';
import { type createRepositoryActivities, type PublishPackagesInput } from '../../activities/repository';
import { lockStateQuery } from '../../workflows/messages';
import { buildTestDeb, testPublisher, type ArtifactTarget } from '../helpers/packages';
import { awsFor, clientFor, startWorkers, testConfig, uid } from '../helpers/stack';

describe('publish fencing', () => {
  let client: Client;
  let workers: { stop(): Promise<void> };
  let s3: S3Client;
  let bucket: string;
  let acts: ReturnType<typeof createRepositoryActivities>;
  let input: PublishPackagesInput;
  let lockId: string;

  beforeAll(async () => {
    const config = testConfig([]);
    s3 = (await awsFor(config)).s3;
    client = await clientFor(config);
    workers = await startWorkers(config);
    let target: ArtifactTarget;
    ({ acts, bucket, target } = await testPublisher(config, s3, 'fence', { fence: leaseFence(client) }));
    const one = await buildTestDeb({ name: 'tally', version: '1.0.0-1', arch: 'all' }, target);
    input = {
      environment: 'staging',
      channel: 'unstable',
      distro: 'bookworm',
      distroSpec: { format: 'deb', codename: 'bookworm', arch: 'amd64' },
      artifacts: [one],
      keepBuilds: 3,
      repository: 'acme/tally',
      packages: ['tally'],
    };
    // The lock entity, holding lease L-current for a holder that is still at work.
    lockId = `repo-lock/${bucket}/fence-${uid()}`;
    await client.workflow.start('repositoryLock', {
      taskQueue: config.temporal.taskQueue,
      workflowId: lockId,
      args: [
        {
          queue: [],
          granted: 1,
          holder: {
            requester: 'pipeline/acme/other/main/x/publish',
            leaseId: 'L-current',
            grantedAt: '',
            leaseSeconds: 600,
          },
        },
      ],
    });
    await client.workflow.getHandle(lockId).query(lockStateQuery);
  });
  afterAll(async () => {
    await client.workflow
      .getHandle(lockId)
      .terminate('test over')
      .catch(() => undefined);
    await workers?.stop();
    await client?.connection.close();
  });

  const release = async () =>
    s3
      .send(new GetObjectCommand({ Bucket: bucket, Key: 'apt/dists/bookworm-unstable/InRelease' }))
      .then((r) => r.Body?.transformToString())
      .catch(() => undefined);

  it('refuses to switch with a lease that is no longer the lock holder’s, and switches with the current one', async () => {
    const err = await acts
      .publishPackages({ ...input, lease: { lockId, leaseId: 'L-passed' } })
      .catch((e: unknown) => e as ApplicationFailure);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('LeaseLost');
    expect((err as ApplicationFailure).message).toContain(`the lease on ${lockId} passed before the switch`);
    // Nothing readers follow was written.
    expect(await release()).toBeUndefined();

    const r = await acts.publishPackages({ ...input, lease: { lockId, leaseId: 'L-current' } });
    expect(r.changed).toBe(true);
    expect(await release()).toContain('Suite: bookworm-unstable');
  });
});
