// The pipeline's check at its build number (patch `older-commit-superseded-at-build`): does a
// commit that already has an earlier build on the branch descend from this run's commit? Since
// patch `earlier-builds-one-check` that is ONE descendantRelations activity for all the earlier
// builds (one fetch of the remote), not one commitRelation per build in sequence. On the dev server
// with the real branch-state entity (build numbers handed out beforehand to other commits) and test
// doubles, typed against the real activities, for git, the build steps and publishing.
import type { Client } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import type { BuildActivities, OrchestratorActivities } from '../../activities';
import { createControlActivities } from '../../activities/control';
import type { CommitRelation, DescendantRelationsInput } from '../../activities/git/ancestry';
import { pipelineId } from '../../common/ids';
import { buildQueue } from '../../common/queues';
import type { PipelineInput } from '../../common/types';
import { repositorySpec, type ConveyorConfig } from '../../config/conveyor';
import { statusQuery } from '../../workflows/messages';
import type { pipeline } from '../../workflows/pipeline';
import { clientFor, testConfig, testEnv, uid } from '../helpers/stack';
import { builtDeb, passedStep, publishedResult } from '../helpers/doubles';

describe('pipeline: earlier builds of the branch checked with one activity', () => {
  const names = {
    superseded: `acme/earlier-sup-${uid()}`,
    proceeds: `acme/earlier-ok-${uid()}`,
    first: `acme/earlier-first-${uid()}`,
  };
  let config: ConveyorConfig;
  let client: Client;
  let connection: NativeConnection;
  let workers: Worker[];
  let running: Promise<void>[];
  /** What descendantRelations answers, by descendant sha; every call it got. */
  const answers = new Map<string, CommitRelation>();
  const asked: DescendantRelationsInput[] = [];
  const pairsAsked: string[] = [];

  beforeAll(async () => {
    config = testConfig(
      Object.values(names).map((name) => ({
        name,
        cloneUrl: 'https://git.invalid/acme/earlier.git',
        steps: { unit: 'make test', package: 'make package' },
        branches: [{ match: 'main', channel: name.split('/')[1] }],
        more: { packages: [name.split('/')[1]] },
      })),
    );
    try {
      Runtime.install({ logger: new DefaultLogger((process.env.CONVEYOR_TEST_LOG_LEVEL as 'WARN') ?? 'WARN') });
    } catch {
      /* already installed in this process */
    }
    client = await clientFor(config);
    connection = await NativeConnection.connect({ address: testEnv().temporal });
    const [distro] = Object.keys(config.distros);
    const orchestrator: Partial<OrchestratorActivities> = {
      ...createControlActivities({ client, taskQueue: config.temporal.taskQueue }),
      reportCommitStatus: () => Promise.resolve({ reported: false, reason: 'no token' }),
      descendantRelations: (i) => {
        asked.push(i);
        return Promise.resolve({ relations: i.descendants.map((d) => answers.get(d) ?? 'not-ancestor') });
      },
      commitRelation: (i) => {
        pairsAsked.push(`${i.ancestor} ${i.descendant}`);
        return Promise.resolve({ relation: answers.get(i.descendant) ?? 'not-ancestor' });
      },
      publishPackages: () => Promise.resolve(publishedResult()),
      publishedVersions: () => Promise.resolve({ versions: [] }),
    };
    const build: Partial<BuildActivities> = {
      runStep: passedStep,
      buildPackages: (i) => builtDeb(i, 'earlier', distro),
    };
    const namespace = config.temporal.namespace;
    workers = [
      await Worker.create({
        connection,
        namespace,
        taskQueue: config.temporal.taskQueue,
        workflowBundle: { codePath: testEnv().bundle },
        activities: orchestrator,
      }),
      await Worker.create({ connection, namespace, taskQueue: buildQueue(distro), activities: build }),
    ];
    running = workers.map((w) => w.run());
  });

  afterAll(async () => {
    workers?.forEach((w) => w.shutdown());
    await Promise.all(running ?? []);
    await connection?.close();
    await client?.connection.close();
  });

  /** Build numbers 1, 2, … handed out on `main` to these commits, as their own runs would have got them. */
  async function earlierBuilds(name: string, shas: string[]): Promise<void> {
    const control = createControlActivities({ client, taskQueue: config.temporal.taskQueue });
    for (const sha of shas)
      await control.allocateBuild({ repository: name, branch: 'main', pipelineId: pipelineId(name, 'main', sha) });
  }

  async function run(name: string, sha: string) {
    const repo = config.repositories.find((r) => r.name === name)!;
    const input: PipelineInput = {
      repository: repositorySpec(config, repo, repo.branches[0]),
      branch: 'main',
      sha,
      commit: { message: 'earlier', author: 'dev', compareUrl: '' },
    };
    const handle = await client.workflow.start<typeof pipeline>('pipeline', {
      workflowId: pipelineId(name, 'main', sha),
      taskQueue: config.temporal.taskQueue,
      args: [input],
    });
    const result = await handle.result();
    const events = (await handle.fetchHistory()).events ?? [];
    const scheduled = (type: string) =>
      events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === type).length;
    return {
      result,
      failure: (await handle.query(statusQuery)).failure,
      calls: { descendantRelations: scheduled('descendantRelations'), commitRelation: scheduled('commitRelation') },
    };
  }

  const sha = () => uid().repeat(5);

  it('asks once about all earlier builds and ends superseded by the newest one that descends from it', async () => {
    const [b1, b2, b3, own] = [sha(), sha(), sha(), sha()];
    await earlierBuilds(names.superseded, [b1, b2, b3]);
    answers.set(b3, 'not-ancestor').set(b2, 'ancestor').set(b1, 'ancestor');
    const { result, failure, calls } = await run(names.superseded, own);
    expect(calls).toEqual({ descendantRelations: 1, commitRelation: 0 });
    expect(asked.filter((i) => i.ancestor === own)).toEqual([
      { cloneUrl: 'https://git.invalid/acme/earlier.git', ancestor: own, descendants: [b3, b2, b1] },
    ]);
    expect(pairsAsked.filter((p) => p.startsWith(own))).toEqual([]);
    expect(result).toMatchObject({ status: 'superseded', build: 4 });
    expect(result.stages.find((s) => s.name === 'package')?.state).toBe('skipped');
    expect(failure).toBe(
      `commit ${b2.slice(0, 12)}, a descendant of this one, already has build 2: an older commit is not built after it`,
    );
  });

  it('proceeds when no earlier build descends from it (others unrelated or gone from the remote)', async () => {
    const [b1, b2, b3, own] = [sha(), sha(), sha(), sha()];
    await earlierBuilds(names.proceeds, [b1, b2, b3]);
    answers.set(b3, 'not-ancestor').set(b2, 'descendant-missing').set(b1, 'ancestor-missing');
    const { result, calls } = await run(names.proceeds, own);
    expect(calls).toEqual({ descendantRelations: 1, commitRelation: 0 });
    expect(asked.filter((i) => i.ancestor === own).map((i) => i.descendants)).toEqual([[b3, b2, b1]]);
    expect(result).toMatchObject({ status: 'succeeded', build: 4 });
    expect(result.stages.every((s) => s.state === 'succeeded')).toBe(true);
  });

  it('asks nothing when the branch has no earlier build', async () => {
    const own = sha();
    const { result, calls } = await run(names.first, own);
    expect(calls).toEqual({ descendantRelations: 0, commitRelation: 0 });
    expect(result).toMatchObject({ status: 'succeeded', build: 1 });
  });
});
