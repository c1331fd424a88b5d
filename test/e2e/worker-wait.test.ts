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
});
