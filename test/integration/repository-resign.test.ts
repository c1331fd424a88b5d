// The scheduled re-sign end to end: a suite published with a Release that has since expired (a
// validity of seconds stands for signing.validDays) is refused by apt-get; the orchestrator's
// schedule (workers/resign-schedule.ts), triggered, runs the resignReleases workflow on the real
// orchestrator worker under the publish lock, and apt-get accepts the suite again.
import type { Client } from '@temporalio/client';
import { createRepositoryActivities } from '../../activities/repository';
import { parseS3Url } from '../../config/conveyor';
import {
  RESIGN_SCHEDULE_ID,
  ensureResignSchedule,
  resignEverySeconds,
  resignTargets,
} from '../../workers/resign-schedule';
import type { ResignReleasesResult } from '../../workflows/resign-releases';
import { buildTestDeb, testSigningKey } from '../helpers/packages';
import { aptClient } from '../helpers/readers';
import { awsFor, clientFor, startWorkers, tempDir, testConfig, testEnv } from '../helpers/stack';

describe('scheduled re-sign of APT Releases', () => {
  let client: Client;
  let workers: { stop(): Promise<void> } | undefined;

  afterAll(async () => {
    await client?.schedule
      .getHandle(RESIGN_SCHEDULE_ID)
      .delete()
      .catch(() => undefined);
    await workers?.stop();
    await client?.connection.close();
  });

  it('renews an expired Release through the schedule; apt-get refuses it before and accepts it after', async () => {
    const config = testConfig(
      [
        {
          name: 'acme/resigned',
          cloneUrl: '/dev/null',
          steps: {},
          branches: [
            { match: 'main', channel: 'unstable' },
            { match: 'v*', channel: 'stable' },
          ],
        },
      ],
      {},
      { deb: { format: 'deb', codename: 'bookworm', arch: 'amd64' }, el: { format: 'rpm', arch: 'x86_64' } },
    );
    const s3 = (await awsFor(config)).s3;
    const bucket = parseS3Url(config.storage.staging).bucket;
    const http = `${testEnv().aws}/${bucket}`;
    const [distro] = Object.keys(config.distros).filter((d) => config.distros[d].format === 'deb');
    // Every deb suite in both environments; rpm repositories have no expiry.
    expect(resignTargets(config).map((t) => `${t.environment} ${t.channel} ${t.distro}`)).toEqual([
      `staging unstable ${distro}`,
      `staging stable ${distro}`,
      `production unstable ${distro}`,
      `production stable ${distro}`,
    ]);
    expect(resignEverySeconds(config)).toBe(86_400);

    const key = await testSigningKey();
    const artifactsBucket = parseS3Url(config.storage.artifacts).bucket;
    const short = createRepositoryActivities({
      s3,
      artifactsBucket,
      buckets: { staging: bucket, production: parseS3Url(config.storage.production).bucket },
      signingKey: () => key,
      workDir: tempDir('resign-work'),
      validDays: { staging: 2 / 86_400 },
    });
    const d = await buildTestDeb(
      { name: 'resigned', version: '1.0-1', arch: 'all' },
      { s3, bucket: artifactsBucket, distro, dir: tempDir('resign-deb') },
    );
    await short.publishPackages({
      environment: 'staging',
      channel: 'unstable',
      distro,
      distroSpec: config.distros[distro],
      artifacts: [d],
      keepBuilds: 3,
      repository: 'acme/resigned',
    });
    await new Promise((r) => setTimeout(r, 3500));
    const apt = await aptClient(tempDir('apt-resign'), `${http}/apt`, 'bookworm-unstable', `${http}/keys/conveyor.asc`);
    const refused = await apt.update();
    expect(refused.exitCode).not.toBe(0);
    expect(refused.output).toMatch(/is expired/);

    client = await clientFor(config);
    workers = await startWorkers(config);
    expect(await ensureResignSchedule(client, config)).toBe(RESIGN_SCHEDULE_ID);
    const schedule = client.schedule.getHandle(RESIGN_SCHEDULE_ID);
    // A second start (another orchestrator, a restart) updates it in place.
    expect(await ensureResignSchedule(client, config)).toBe(RESIGN_SCHEDULE_ID);
    await schedule.trigger();
    let workflowId: string | undefined;
    for (let i = 0; i < 100 && !workflowId; i++) {
      const described = await schedule.describe();
      const action = described.info.recentActions[0]?.action;
      workflowId = action?.type === 'startWorkflow' ? action.workflow.workflowId : undefined;
      if (!workflowId) await new Promise((r) => setTimeout(r, 200));
    }
    expect(workflowId).toBeDefined();
    const result = (await client.workflow.getHandle(workflowId!).result()) as ResignReleasesResult;
    expect(result.resigned).toEqual([expect.objectContaining({ environment: 'staging', channel: 'unstable', distro })]);
    // Never published: nothing to re-sign.
    expect(result.skipped).toHaveLength(3);
    expect(Date.parse(result.resigned[0].validUntil!) - Date.now()).toBeGreaterThan(6 * 86_400_000);

    const accepted = await apt.update();
    expect(accepted.exitCode).toBe(0);
    expect((await apt.download('resigned=1.0-1')).exitCode).toBe(0);
  });
});
