// `conveyor replay`: downloads the histories of real runs from the server and replays them against
// the local workflow code, printing a table; bad --since values are named.
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { createControlActivities } from '../../activities/control';
import type { ConveyorConfig } from '../../config/conveyor';
import { conveyor } from '../helpers/cli';
import { awsFor, clientFor, startSampleRun, startWorkers, tempDir, testConfig, uid } from '../helpers/stack';

describe('conveyor replay', () => {
  let config: ConveyorConfig;
  let client: Client;
  let workers: { stop(): Promise<void> };
  const name = `acme/replay-${uid()}`;

  beforeAll(async () => {
    const dir = tempDir('replay');
    config = testConfig([
      { name, cloneUrl: path.join(dir, 'widget.git'), steps: { unit: 'make test', integration: 'make integration' } },
    ]);
    await awsFor(config);
    client = await clientFor(config);
    workers = await startWorkers(config);
    const { workflowId } = await startSampleRun(config, client, {
      repository: name,
      bare: path.join(dir, 'widget.git'),
      work: path.join(dir, 'work'),
      message: 'replay me',
    });
    await client.workflow.getHandle(workflowId).result();
  });
  afterAll(async () => {
    await workers?.stop();
    await client?.connection.close();
  });

  it('replays the entity workflows too (branch-state, locks)', async () => {
    const control = createControlActivities({ client, taskQueue: config.temporal.taskQueue });
    const repo = `acme/entity-${uid()}`;
    await control.allocateBuild({
      repository: repo,
      branch: 'main',
      pipelineId: `pipeline/${repo}/main/${'a'.repeat(40)}`,
    });
    const r = await conveyor(
      config.file,
      ['replay', '--query', `ConveyorRepository = '${name}'`, '--entities', '--limit', '500'],
      { timeoutMs: 120000 },
    );
    expect(r.stderr).not.toContain('conveyor:');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`branch-state/${repo}/main\\s+branchState\\s+ok`));
  });

  it('replays the pipeline and its stage children against the local code', async () => {
    const r = await conveyor(config.file, ['replay', '--query', `ConveyorRepository = '${name}'`], {
      timeoutMs: 90000,
    });
    expect(r.stderr).not.toContain('conveyor:');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`pipeline/${name}/main/[0-9a-f]{40}\\s+pipeline\\s+ok`));
    expect(r.stdout).toMatch(/\/test\s+testStage\s+ok/);
    expect(r.stdout).toContain('2 of 2 histories replay against the local workflow code');
  });

  it('names a bad --since', async () => {
    const r = await conveyor(config.file, ['replay', '--since', 'a week'], { timeoutMs: 60000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--since: use a number and m, h or d (e.g. 7d), not "a week"');
  });
});
