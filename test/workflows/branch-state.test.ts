// The branch-state entity: build numbers handed out by an Update are unique under concurrency,
// stable for a retried pipeline, survive continue-as-new, and are readable with `temporal workflow query`.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { createControlActivities } from '../../activities/control';
import { branchStateId } from '../../common/ids';
import type { ConveyorConfig } from '../../config/conveyor';
import { branchStateQuery } from '../../workflows/messages';
import { clientFor, startWorkers, testConfig, uid } from '../helpers/stack';

const TEMPORAL = path.resolve(__dirname, '..', '..', '.tools', 'bin', 'temporal');

describe('branch-state entity', () => {
  let config: ConveyorConfig;
  let client: Client;
  let workers: { stop(): Promise<void> };
  let control: ReturnType<typeof createControlActivities>;

  beforeAll(async () => {
    config = testConfig([]);
    client = await clientFor(config);
    workers = await startWorkers(config);
    control = createControlActivities({ client, taskQueue: config.temporal.taskQueue });
  });
  afterAll(async () => {
    await workers?.stop();
    await client?.connection.close();
  });

  it('gives 30 concurrent pipelines 30 distinct numbers, and a pipeline asking again its first number', async () => {
    const repo = `acme/r${uid()}`;
    const ids = Array.from({ length: 30 }, (_, i) => `pipeline/${repo}/main/${String(i).padStart(40, '0')}`);
    const builds = await Promise.all(
      ids.map((pipelineId) => control.allocateBuild({ repository: repo, branch: 'main', pipelineId })),
    );
    expect(new Set(builds.map((b) => b.build)).size).toBe(30);
    expect(Math.min(...builds.map((b) => b.build))).toBe(1);
    expect(Math.max(...builds.map((b) => b.build))).toBe(30);
    const again = await control.allocateBuild({ repository: repo, branch: 'main', pipelineId: ids[7] });
    expect(again.build).toBe(builds[7].build);
    // Another branch counts on its own.
    expect((await control.allocateBuild({ repository: repo, branch: 'v1.2', pipelineId: ids[0] })).build).toBe(1);

    // Async: the workers answering the query run in this very process.
    const { stdout: out } = await promisify(execFile)(
      TEMPORAL,
      [
        'workflow',
        'query',
        '--address',
        config.temporal.address,
        '--workflow-id',
        branchStateId(repo, 'main'),
        '--type',
        'state',
        '-o',
        'json',
      ],
      { encoding: 'utf8' },
    );
    expect(out).toContain('"lastBuild": 30');
  });

  it('refuses an allocation that does not come from a pipeline', async () => {
    const repo = `acme/r${uid()}`;
    const err = await control
      .allocateBuild({ repository: repo, branch: 'main', pipelineId: 'not-a-pipeline' })
      .catch((e: unknown) => e);
    expect((err as { cause?: Error }).cause?.message).toMatch(
      /allocateBuild needs a pipeline workflow ID, got "not-a-pipeline"/,
    );
  });

  it('continues as new before its history grows large and keeps its state', async () => {
    const repo = `acme/r${uid()}`;
    const workflowId = branchStateId(repo, 'main');
    await client.workflow.start('branchState', {
      workflowId,
      taskQueue: config.temporal.taskQueue,
      args: [{ repository: repo, branch: 'main', lastBuild: 0, assigned: [], maxHistoryEvents: 40 }],
    });
    for (let i = 1; i <= 25; i++) {
      const r = await control.allocateBuild({
        repository: repo,
        branch: 'main',
        pipelineId: `pipeline/${repo}/main/${i}`,
      });
      expect(r.build).toBe(i);
    }
    const handle = client.workflow.getHandle(workflowId);
    const runs = await client.workflow.count(`WorkflowId = "${workflowId}"`);
    expect(runs.count).toBeGreaterThan(1); // continued as new at least once
    const state = await handle.query(branchStateQuery);
    expect(state.lastBuild).toBe(25);
    expect(
      (await control.allocateBuild({ repository: repo, branch: 'main', pipelineId: `pipeline/${repo}/main/3` })).build,
    ).toBe(3);
  });
});
