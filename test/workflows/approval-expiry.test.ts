// The approval gate's timeout on the time-skipping server: a release-branch run waits in
// `awaiting-approval` for its (3-day) timeout and ends `expired` with nothing promoted, in seconds of
// wall time. Build activities are test doubles typed against the real ones; build numbers and locks
// are the real entity workflows.
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createControlActivities } from '../../activities/control';
import { pipelineId } from '../../common/ids';
import type { PipelineInput } from '../../common/types';
import { repositorySpec } from '../../config/conveyor';
import { statusQuery } from '../../workflows/messages';
import type { pipeline } from '../../workflows/pipeline';
import { testConfig, uid, waitForStatus } from '../helpers/stack';
import { startTimeSkipping, startTimeSkippingWorkers } from '../helpers/time-skipping';
import { publishedResult } from '../helpers/doubles';

describe('approval gate on the time-skipping server', () => {
  let env: TestWorkflowEnvironment;
  beforeAll(async () => {
    env = await startTimeSkipping();
  });
  afterAll(async () => {
    await env?.teardown();
  });

  it('expires after its timeout and promotes nothing', async () => {
    const name = `acme/rel-${uid()}`;
    const config = testConfig([
      {
        name,
        cloneUrl: 'https://git.invalid/acme/rel.git',
        steps: { unit: 'make test', package: 'make package' },
        branches: [{ match: 'v*.*', channel: 'stable', release: true, approval: true }],
        more: { approvalTimeoutHours: 72 },
      },
    ]);
    const repo = config.repositories[0];
    const [distro] = repo.distros;
    const sha = uid().repeat(5);
    const input: PipelineInput = {
      repository: repositorySpec(config, repo, repo.branches[0]),
      branch: 'v1.2',
      sha,
      commit: { message: 'release', author: 'dev', compareUrl: '' },
    };
    const published: string[] = [];
    const artifact = {
      key: 'k',
      sha256: 'a'.repeat(64),
      size: 1,
      name: 'widget',
      version: '1.2.0-1',
      arch: 'all',
      format: 'deb' as const,
      distro,
      file: 'widget_1.2.0-1_all.deb',
    };
    const workers = await startTimeSkippingWorkers(env, config, {
      orchestrator: {
        ...createControlActivities({ client: env.client, taskQueue: config.temporal.taskQueue }),
        reportCommitStatus: () => Promise.resolve({ reported: false, reason: 'no token' }),
        publishPackages: (i) => {
          published.push(`${i.environment}/${i.channel}`);
          return Promise.resolve(publishedResult());
        },
        publishedVersions: () => Promise.resolve({ versions: [] }),
        // The release tag is pushed with the token: an orchestrator activity, never a builder's.
        releaseCommit: () =>
          Promise.resolve({
            version: '1.2.0',
            tag: 'v1.2.0',
            tagCreated: true,
            nextBranch: 'v1.2.1',
            nextBranchCreated: true,
          }),
      },
      build: {
        runStep: (i) =>
          Promise.resolve({ step: i.step, exitCode: 0, headSha: sha, logKey: 'l', tail: '', durationMs: 1 }),
        buildPackages: (i) =>
          Promise.resolve({ version: '1.2.0', build: i.build, artifacts: [artifact], logKey: 'l', tail: '' }),
      },
    });
    try {
      const workflowId = pipelineId(name, 'v1.2', sha);
      const handle = await env.client.workflow.start<typeof pipeline>('pipeline', {
        workflowId,
        taskQueue: config.temporal.taskQueue,
        args: [input],
      });
      await waitForStatus(env.client, workflowId, 'awaiting-approval');
      const before = await env.currentTimeMs();
      const result = await handle.result();
      expect(result.status).toBe('expired');
      expect(result.promoted).toBeUndefined();
      expect(result.stages.find((s) => s.name === 'promote')?.state).toBe('skipped');
      expect((await env.currentTimeMs()) - before).toBeGreaterThanOrEqual(72 * 3600 * 1000);
      expect(published).toEqual(['staging/stable']);
      const status = await handle.query(statusQuery);
      expect(status.approval?.decision).toBe('expired');
    } finally {
      await workers.stop();
    }
  });
});
