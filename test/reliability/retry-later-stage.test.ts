// Fault suite, scenario 7: a later stage fails after earlier ones succeeded, and `retry` re-runs
// that stage only. The fault is real: the staging bucket does not exist while the run publishes
// (deleted after provisioning, as an operator's mistake or a bucket briefly gone would leave it),
// so publishPackages fails against the S3 endpoint (a missing bucket is configuration: at once,
// naming the bucket) and the run waits in `awaiting-operator`. The bucket is then created again and `conveyor retry --stage
// publish` (the retry Update) lets the run finish. From the workflow histories: the test and
// package children were started once and their build activities ran once; publish ran twice
// (`…/publish`, `…/publish#2`). Size: CONVEYOR_RETRY_RPM=0 builds the deb only (default: deb + rpm).
import path from 'node:path';
import { DeleteBucketCommand, HeadBucketCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { stageId } from '../../common/ids';
import type { PipelineResult } from '../../common/types';
import { parseS3Url, type ConveyorConfig } from '../../config/conveyor';
import type { AwsClients } from '../../activities/storage/s3';
import { provisionBuckets } from '../../cli/local-stack/provision';
import { statusQuery } from '../../workflows/messages';
import { conveyor } from '../helpers/cli';
import {
  awsFor,
  clientFor,
  startSampleRun,
  startWorkers,
  tempDir,
  testConfig,
  testEnv,
  uid,
  waitForStatus,
} from '../helpers/stack';

const EventType = temporal.api.enums.v1.EventType;
const WITH_RPM = process.env.CONVEYOR_RETRY_RPM !== '0';

describe('reliability: retry of a later stage', () => {
  const repository = `acme/retry-${uid()}`;
  let config: ConveyorConfig;
  let client: Client;
  let aws: AwsClients;
  let workers: { stop(): Promise<void> };
  let dir: string;

  beforeAll(async () => {
    dir = tempDir('retry-later-stage');
    config = testConfig(
      [
        {
          name: repository,
          cloneUrl: path.join(dir, 'widget.git'),
          steps: { unit: 'make test', package: 'make package' },
          more: { packages: ['widget'] },
        },
      ],
      {},
      {
        deb: { format: 'deb', codename: 'bookworm', arch: 'amd64' },
        ...(WITH_RPM ? { rpm: { format: 'rpm' as const, arch: 'x86_64' } } : {}),
      },
    );
    aws = await awsFor(config);
    client = await clientFor(config);
    workers = await startWorkers(config);
  });

  afterAll(async () => {
    await workers?.stop();
    await client?.connection.close();
  });

  /** How often an activity type was scheduled in a history, and the attempt each ended on (the
   * started event is written once, with the last attempt's number). */
  function attemptsOf(events: temporal.api.history.v1.IHistoryEvent[], activityType: string) {
    const scheduled = events.filter(
      (e) =>
        e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED &&
        e.activityTaskScheduledEventAttributes?.activityType?.name === activityType,
    );
    const ids = new Set(scheduled.map((e) => e.eventId?.toString()));
    const attempts = events
      .filter(
        (e) =>
          e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED &&
          ids.has(e.activityTaskStartedEventAttributes?.scheduledEventId?.toString()),
      )
      .map((e) => e.activityTaskStartedEventAttributes!.attempt!);
    return { scheduled: scheduled.length, attempts };
  }

  async function history(workflowId: string) {
    return (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  }

  it('publish fails on a missing bucket after package succeeded; retry re-runs publish only', async () => {
    const distros = Object.keys(config.distros);
    const stagingBucket = parseS3Url(config.storage.staging).bucket;
    const listed = await aws.s3.send(new ListObjectsV2Command({ Bucket: stagingBucket }));
    expect(listed.KeyCount ?? 0).toBe(0);
    await aws.s3.send(new DeleteBucketCommand({ Bucket: stagingBucket }));

    const t0 = Date.now();
    const { workflowId } = await startSampleRun(config, client, {
      repository,
      bare: path.join(dir, 'widget.git'),
      work: path.join(dir, 'work'),
      message: 'publish will fail once',
    });
    const waiting = await waitForStatus(client, workflowId, 'awaiting-operator', 90000);
    const t1 = Date.now();
    expect(waiting.stages.map((s) => `${s.name}${s.distro ? '/' + s.distro : ''}:${s.state}`)).toEqual([
      'test:succeeded',
      ...distros.map((d) => `package/${d}:succeeded`),
      'publish:failed',
      'promote:pending',
    ]);
    const publish = waiting.stages.find((s) => s.name === 'publish')!;
    expect(publish.error).toContain(`the staging bucket ${stagingBucket} does not exist (storage.staging)`);
    // The fault was real: the publisher met the missing bucket, and a missing bucket is
    // configuration, not an outage: one attempt, not the minutes of retries an outage gets. Each
    // distro's repository is its own (an APT suite, a YUM repository): they publish side by side,
    // and each met the missing bucket once.
    const firstPublish = attemptsOf(await history(stageId(workflowId, 'publish')), 'publishPackages');
    expect(firstPublish).toEqual({ scheduled: distros.length, attempts: distros.map(() => 1) });
    const lastAttempt = firstPublish.attempts[0];

    // The bucket is back; the operator retries publish (the Update, as `conveyor retry` sends it).
    await provisionBuckets(aws, config, ['staging', 'production']);
    await aws.s3.send(new HeadBucketCommand({ Bucket: stagingBucket }));
    const retry = await conveyor(config.file, ['retry', workflowId, '--stage', 'publish', '--by', 'ops']);
    expect(retry).toMatchObject({ code: 0, stdout: `retrying ${workflowId}: publish\n` });
    const result = (await client.workflow.getHandle(workflowId).result()) as PipelineResult;
    const t2 = Date.now();
    expect(result.status).toBe('succeeded');
    expect(result.stages.find((s) => s.name === 'publish')).toMatchObject({ state: 'succeeded', attempt: 2 });
    expect(result.stages.filter((s) => s.name !== 'publish').every((s) => s.attempt === 1)).toBe(true);

    // The children the pipeline started, from its own history: publish twice, everything else once.
    const pipelineEvents = await history(workflowId);
    const children = pipelineEvents
      .filter((e) => e.eventType === EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED)
      .map((e) => e.startChildWorkflowExecutionInitiatedEventAttributes!.workflowId!.slice(workflowId.length + 1));
    expect(children.sort()).toEqual(
      ['test', ...distros.map((d) => `package/${d}`), 'publish', 'publish#2', 'promote'].sort(),
    );
    // …and the work inside each package child ran once: one buildPackages, scheduled and started once.
    const perPackage: Record<string, { scheduled: number; attempts: number[] }> = {};
    for (const d of distros) {
      perPackage[d] = attemptsOf(await history(stageId(workflowId, 'package', d)), 'buildPackages');
      expect({ d, ...perPackage[d] }).toEqual({ d, scheduled: 1, attempts: [1] });
    }
    // The build number was allocated once, before the failure, and kept.
    const allocations = pipelineEvents.filter(
      (e) =>
        e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED &&
        e.activityTaskScheduledEventAttributes?.activityType?.name === 'allocateBuild',
    );
    expect(allocations).toHaveLength(1);
    expect(result.build).toBe(1);

    // What the retry published is what readers get.
    const packages = await (
      await fetch(
        `${testEnv().aws}/${stagingBucket}/${result.published!.repositories.find((r) => r.distro === distros[0])!.path}/dists/bookworm-unstable/main/binary-amd64/Packages`,
      )
    ).text();
    expect(packages).toContain(`Version: ${result.version}`);
    const status = await client.workflow.getHandle(workflowId).query(statusQuery);
    expect(status.actions).toEqual([
      expect.objectContaining({ action: 'retry', by: 'ops', detail: 'publish', accepted: true }),
    ]);

    process.stdout.write(
      `retry-later-stage figures: ${JSON.stringify({
        distros: distros.length,
        failedPublishAttempts: lastAttempt,
        secondsToAwaitingOperator: ((t1 - t0) / 1000).toFixed(1),
        secondsFromRetryToSucceeded: ((t2 - t1) / 1000).toFixed(1),
        childrenStarted: children,
        buildPackagesPerDistro: perPackage,
        allocateBuild: allocations.length,
      })}\n`,
    );
  });
});
