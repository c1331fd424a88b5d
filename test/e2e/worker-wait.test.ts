// A distro with no build worker: the run no longer looks silently "running". After the
// repository's workerWaitNoticeSeconds the stage says what it waits for (the pipeline's status,
// `conveyor status`, the stage's current details in the Web UI), and the notice clears once a
// builder comes and the run goes on.
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { PipelineStatus } from '../../common/types';
import type { ConveyorConfig } from '../../config/conveyor';
import { statusQuery } from '../../workflows/messages';
import { conveyor } from '../helpers/cli';
import { decidePush } from '../../api/github-push';
import { pushPayload } from '../../cli/webhook-client';
import { awsFor, clientFor, startSampleRun, startWorkers, tempDir, testConfig } from '../helpers/stack';

describe('waiting for a build worker', () => {
  let config: ConveyorConfig;
  let client: Client;
  let dir: string;
  let bare: string;
  const stops: { stop(): Promise<void> }[] = [];

  beforeAll(async () => {
    dir = tempDir('lonely');
    bare = path.join(dir, 'widget.git');
    config = testConfig([
      { name: 'acme/lonely', cloneUrl: bare, steps: { unit: 'make test' }, more: { workerWaitNoticeSeconds: 2 } },
    ]);
    await awsFor(config);
    client = await clientFor(config);
    stops.push(await startWorkers(config, { builders: false }));
  });
  afterAll(async () => {
    for (const s of stops) await s.stop();
    await client?.connection.close();
  });

  it('says it waits for a build-<distro> worker, and goes on when one comes', async () => {
    const { workflowId } = await startSampleRun(config, client, {
      repository: 'acme/lonely',
      bare,
      work: path.join(dir, 'work'),
      message: 'nobody builds me',
    });
    const queue = `build-${Object.keys(config.distros)[0]}`;
    let status: PipelineStatus | undefined;
    for (let i = 0; i < 100; i++) {
      status = await client.workflow.getHandle(workflowId).query(statusQuery);
      if (status.stages[0].note) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(status?.stages[0]).toMatchObject({
      name: 'test',
      state: 'running',
      note: `waiting for a ${queue} worker: none has taken the step for 2 s (see conveyor workers)`,
    });
    expect((await conveyor(config.file, ['status', workflowId])).stdout).toContain(
      `test: waiting for a ${queue} worker`,
    );
    const details = await client.workflow
      .getHandle(`${workflowId}/test`)
      .query<{ currentDetails: string }>('__temporal_workflow_metadata');
    expect(details.currentDetails).toContain(`waiting for a ${queue} worker`);

    stops.push(await startWorkers(config, { orchestrator: false }));
    await client.workflow.getHandle(workflowId).result();
    const done = await client.workflow.getHandle(workflowId).query(statusQuery);
    expect(done.status).toBe('succeeded');
    expect(done.stages[0].note).toBeUndefined();
  });
  it('says so for the e2e step of verify too, which waits on the build queue like any step', async () => {
    const e2eConfig = testConfig([
      {
        name: 'acme/lonely-e2e',
        cloneUrl: bare,
        steps: { unit: 'make test', package: 'make package', e2e: 'true' },
        more: { workerWaitNoticeSeconds: 2, staging: { tags: { Role: 'nobody' } } },
      },
    ]);
    const d = decidePush(
      e2eConfig,
      pushPayload({ repository: 'acme/lonely-e2e', branch: 'main', sha: 'a'.repeat(40) }),
    );
    if (d.action !== 'start') throw new Error(d.reason);
    stops.push(await startWorkers(e2eConfig, { builders: false }));
    const e2eClient = await clientFor(e2eConfig);
    const [distro] = Object.keys(e2eConfig.distros);
    const id = `verify-alone-${Date.now()}`;
    const handle = await e2eClient.workflow.start('verifyStage', {
      taskQueue: e2eConfig.temporal.taskQueue,
      workflowId: id,
      args: [
        {
          pipelineId: id,
          repository: d.input.repository,
          branch: 'main',
          sha: 'a'.repeat(40),
          version: '1.0.0',
          build: 1,
          hosts: [
            { distro, hosts: [{ instanceId: 'i-1', name: 'h1', distro, executor: 'local', root: '/nonexistent' }] },
          ],
        },
      ],
    });
    try {
      let details = '';
      for (let i = 0; i < 100 && !details; i++) {
        details = (await handle.query<{ currentDetails: string }>('__temporal_workflow_metadata')).currentDetails;
        if (!details) await new Promise((r) => setTimeout(r, 200));
      }
      expect(details).toBe(
        `waiting for a build-${distro} worker: none has taken the step for 2 s (see conveyor workers)`,
      );
    } finally {
      await handle.terminate('test over');
      await e2eClient.connection.close();
    }
  });
});
