// The publish stage since patch `publish-repositories-side-by-side`, on the dev server with test
// doubles for the publishing activities (typed against the real ones) and the real lock entity:
// repositories that share nothing (each APT suite, each distro's YUM repository) and the docs site
// are published side by side under the one lock, distros that share an APT suite one after the
// other; a failure fails the stage only once every publish has ended, and the lock is released
// after that. A stage with one repository and no docs asks no patch: its history is as before.
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { OrchestratorActivities } from '../../activities';
import { createControlActivities } from '../../activities/control';
import { MessageNames } from '../../common/message-names';
import type { ArtifactRef, DocsRef } from '../../common/types';
import { repositorySpec, type ConveyorConfig } from '../../config/conveyor';
import type { publishStage, PublishStageInput } from '../../workflows/stages/publish';
import { clientFor, testConfig, testEnv, uid } from '../helpers/stack';
import { patchesIn, publishedResult } from '../helpers/doubles';

describe('publish stage: independent repositories side by side', () => {
  let config: ConveyorConfig;
  let client: Client;
  let connection: NativeConnection;
  let worker: Worker;
  let running: Promise<void>;
  /** What the doubles saw, in order: `start yum el9`, `end apt bookworm`, … */
  let seen: string[] = [];
  /** Per test: which publishes fail (by distro, or `docs`). */
  let fails = new Set<string>();

  beforeAll(async () => {
    config = testConfig([
      {
        name: `acme/side-${uid()}`,
        cloneUrl: 'https://git.invalid/acme/side.git',
        steps: { unit: 'true', package: 'true' },
        more: { packages: ['widget'] },
      },
    ]);
    client = await clientFor(config);
    connection = await NativeConnection.connect({ address: testEnv().temporal });
    const slow = async (label: string, ms: number) => {
      seen.push(`start ${label}`);
      await new Promise((r) => setTimeout(r, ms));
      seen.push(`end ${label}`);
    };
    const publishing: Partial<OrchestratorActivities> = {
      publishPackages: async (i) => {
        await slow(`${i.distroSpec.format} ${i.distro}`, 300);
        if (fails.has(i.distro)) {
          throw ApplicationFailure.create({ type: 'BadPackage', message: `${i.distro}: refused`, nonRetryable: true });
        }
        return publishedResult({
          repoUrlPath: i.distroSpec.format === 'deb' ? 'apt' : `yum/${i.distro}/${i.channel}`,
          suite: i.distroSpec.format === 'deb' ? `${i.distroSpec.codename}-${i.channel}` : undefined,
          uploaded: [`${i.distro}.pkg`],
        });
      },
      publishDocs: async () => {
        await slow('docs', 300);
        if (fails.has('docs')) {
          throw ApplicationFailure.create({ type: 'BadDocs', message: 'docs: refused', nonRetryable: true });
        }
        return { sitePath: 'docs/site', indexPath: 'docs/site/index.html' } as Awaited<
          ReturnType<OrchestratorActivities['publishDocs']>
        >;
      },
    };
    worker = await Worker.create({
      connection,
      namespace: config.temporal.namespace,
      taskQueue: config.temporal.taskQueue,
      workflowBundle: { codePath: testEnv().bundle },
      activities: { ...createControlActivities({ client, taskQueue: config.temporal.taskQueue }), ...publishing },
    });
    running = worker.run();
  });

  afterAll(async () => {
    worker?.shutdown();
    await running;
    await connection?.close();
    await client?.connection.close();
  });

  const artifact = (distro: string, format: 'deb' | 'rpm') =>
    ({ key: `packages/${distro}/widget.${format}`, name: 'widget', format, distro }) as ArtifactRef;

  /** A publish of the given distros (and docs) to a channel of its own (so a lock of its own). */
  function start(distros: string[], docs: boolean) {
    seen = [];
    const repo = config.repositories[0];
    const spec = repositorySpec(config, repo, repo.branches[0]);
    const channel = `side-${uid()}`;
    const input: PublishStageInput = {
      pipelineId: `pipeline/${repo.name}/main/${'b'.repeat(40)}`,
      repository: {
        ...spec,
        distroSpecs: {
          bookworm: { format: 'deb', codename: 'bookworm', arch: 'amd64' },
          'bookworm-arm': { format: 'deb', codename: 'bookworm', arch: 'arm64' },
          trixie: { format: 'deb', codename: 'trixie', arch: 'amd64' },
          el9: { format: 'rpm', arch: 'x86_64' },
        },
      },
      environment: 'staging',
      channel,
      packages: distros.map((d) => ({ distro: d, artifacts: [artifact(d, d === 'el9' ? 'rpm' : 'deb')] })),
      docs: docs ? ({ manifestKey: 'docs/manifest.json' } as DocsRef) : null,
    };
    const workflowId = `${input.pipelineId}/publish-${channel}`;
    return {
      workflowId,
      result: client.workflow.execute<typeof publishStage>('publishStage', {
        workflowId,
        taskQueue: config.temporal.taskQueue,
        args: [input],
      }),
    };
  }

  async function historyOf(workflowId: string) {
    const events = (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
    const markers = patchesIn(events);
    const lastActivityEnd = events.reduce(
      (at, e, i) => (e.activityTaskCompletedEventAttributes || e.activityTaskFailedEventAttributes ? i : at),
      -1,
    );
    const released = events.findIndex(
      (e) => e.signalExternalWorkflowExecutionInitiatedEventAttributes?.signalName === MessageNames.releaseLock,
    );
    return { markers, lastActivityEnd, released };
  }

  const overlap = (a: string, b: string) =>
    seen.indexOf(`start ${a}`) < seen.indexOf(`end ${b}`) && seen.indexOf(`start ${b}`) < seen.indexOf(`end ${a}`);

  it('publishes each suite, each YUM repository and the docs side by side, a shared suite in turn', async () => {
    fails = new Set();
    const { workflowId, result } = start(['bookworm', 'el9', 'bookworm-arm', 'trixie'], true);
    const r = await result;
    expect(r.repositories.map((x) => x.distro)).toEqual(['bookworm', 'el9', 'bookworm-arm', 'trixie']);
    expect(r.repositories.map((x) => x.suite)).toEqual([
      `bookworm-${r.channel}`,
      undefined,
      `bookworm-${r.channel}`,
      `trixie-${r.channel}`,
    ]);
    expect(r.docs).toEqual({ site: 'docs/site', index: 'docs/site/index.html' });
    expect(overlap('deb bookworm', 'rpm el9')).toBe(true);
    expect(overlap('deb bookworm', 'deb trixie')).toBe(true);
    expect(overlap('rpm el9', 'docs')).toBe(true);
    // Two distros of one suite: one after the other, in input order.
    expect(seen.indexOf('start deb bookworm-arm')).toBeGreaterThan(seen.indexOf('end deb bookworm'));
    const h = await historyOf(workflowId);
    expect(h.markers).toContain('publish-repositories-side-by-side');
    expect(h.released).toBeGreaterThan(h.lastActivityEnd);
  });

  it('fails with the failed publish only once the others have ended, then releases the lock', async () => {
    fails = new Set(['el9']);
    const { workflowId, result } = start(['bookworm', 'el9'], true);
    const err = await result.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(((err as WorkflowFailedError).cause?.cause as Error | undefined)?.message).toBe('el9: refused');
    expect(seen).toEqual(expect.arrayContaining(['end deb bookworm', 'end docs', 'end rpm el9']));
    const h = await historyOf(workflowId);
    expect(h.released).toBeGreaterThan(h.lastActivityEnd);
  });

  it('asks no patch with one repository and no docs', async () => {
    fails = new Set();
    const { workflowId, result } = start(['bookworm'], false);
    expect((await result).repositories).toHaveLength(1);
    expect((await historyOf(workflowId)).markers).not.toContain('publish-repositories-side-by-side');
  });
});
