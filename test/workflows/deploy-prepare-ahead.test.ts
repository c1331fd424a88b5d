// The deploy stage's rolling upgrade since patch `deploy-prepare-ahead`, on the dev server with
// test doubles for the fleet activities (typed against the real ones) and the real lock entity:
// each host is prepared (prepareHost: its versions, and for every batch after the first its
// refreshed package metadata) instead of one hostVersion per package, and the NEXT batch is
// prepared while the current one upgrades and runs its smoke step. When a batch fails, the hosts prepared ahead are neither upgraded nor rolled
// back and stay 'not-started'; a failure of the prepare ahead is reported only with its own batch,
// after the current batch's outcome; and the lock is released only once the prepare ahead ended.
import { ApplicationFailure, defaultPayloadConverter } from '@temporalio/common';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { OrchestratorActivities } from '../../activities';
import { createControlActivities } from '../../activities/control';
import type { Host } from '../../activities/fleet';
import { MessageNames } from '../../common/message-names';
import { repositorySpec, type ConveyorConfig } from '../../config/conveyor';
import type { deployStage, DeployStageInput, DeployStageResult, HostReport } from '../../workflows/stages/deploy';
import { clientFor, testConfig, testEnv, uid } from '../helpers/stack';
import { patchesIn } from '../helpers/doubles';

const EventType = temporal.api.enums.v1.EventType;
const OLD = '1.0.0-1';
const NEW = '1.0.0-2';

/** Resolves when `ready()` holds (polled), or after `ms` (the caller's assertions then fail). */
async function until(ready: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ready() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

describe('deploy stage: the next batch is prepared while the current one upgrades', () => {
  let config: ConveyorConfig;
  let client: Client;
  let connection: NativeConnection;
  let worker: Worker;
  let running: Promise<void>;
  /** What each host runs (by name), as the doubles report and change it. */
  const installed: Record<string, string | null> = {};
  /** Everything the doubles saw, in order: `prepare web-2 start`, `upgrade web-1 1.0.0-2 end`, … */
  let seen: string[] = [];
  /** Whether each prepare was asked to refresh the host's metadata, by host. */
  let refreshes: Record<string, boolean | undefined> = {};
  /** Per test: how the doubles behave. */
  let behaviour: {
    prepareFails?: Set<string>;
    smokeFails?: Set<string>;
    /** An upgrade of this host waits, before it ends, until this holds. */
    upgradeWaits?: Record<string, () => boolean>;
  } = {};

  const hosts = (n: number, distro: string): Host[] =>
    Array.from({ length: n }, (_, i) => ({
      instanceId: `i-00000000000000${i + 1}0`,
      name: `web-${i + 1}`,
      distro,
      executor: 'ssm' as const,
    }));

  beforeAll(async () => {
    config = testConfig([
      {
        name: `acme/prep-${uid()}`,
        cloneUrl: 'https://git.invalid/acme/prep.git',
        steps: { unit: 'true', package: 'true', smoke: 'widget --version' },
        more: { staging: { tags: { Role: 'prep' }, batchSize: 1 }, packages: ['widget'] },
      },
    ]);
    client = await clientFor(config);
    connection = await NativeConnection.connect({ address: testEnv().temporal });
    const fleet: Partial<OrchestratorActivities> = {
      discoverHosts: async (i) => Promise.resolve(hosts(Number(i.tags.Count), i.distro)),
      hostVersion: async (i) => {
        seen.push(`hostVersion ${i.host.name}`);
        return Promise.resolve({ version: installed[i.host.name] ?? null });
      },
      prepareHost: async (i) => {
        seen.push(`prepare ${i.host.name} start`);
        refreshes[i.host.name] = i.refresh;
        await new Promise((r) => setTimeout(r, 50));
        if (behaviour.prepareFails?.has(i.host.name)) {
          seen.push(`prepare ${i.host.name} failed`);
          throw ApplicationFailure.create({
            type: 'VersionNotPublished',
            message: `host ${i.host.name}: widget ${i.version} is not in the published repository`,
            nonRetryable: true,
          });
        }
        seen.push(`prepare ${i.host.name} end`);
        return {
          host: i.host.name,
          versions: Object.fromEntries(i.packages.map((p) => [p, installed[i.host.name] ?? null])),
          refreshed: true,
          logKey: i.logKey,
        };
      },
      upgradeHost: async (i) => {
        seen.push(`upgrade ${i.host.name} ${i.version} start`);
        const before = installed[i.host.name] ?? null;
        const wait = behaviour.upgradeWaits?.[i.host.name];
        if (wait) await until(wait);
        installed[i.host.name] = i.version;
        seen.push(`upgrade ${i.host.name} ${i.version} end`);
        return { host: i.host.name, before, after: i.version, logKey: i.logKey, changed: before !== i.version };
      },
      runOnHost: async (i) => {
        seen.push(`smoke ${i.host.name}`);
        const fails = behaviour.smokeFails?.has(i.host.name);
        return Promise.resolve({ exitCode: fails ? 1 : 0, tail: fails ? 'widget: broken' : 'ok', logKey: i.logKey });
      },
    };
    worker = await Worker.create({
      connection,
      namespace: config.temporal.namespace,
      taskQueue: config.temporal.taskQueue,
      workflowBundle: { codePath: testEnv().bundle },
      activities: {
        ...createControlActivities({ client, taskQueue: config.temporal.taskQueue }),
        ...fleet,
      },
    });
    running = worker.run();
  });

  afterAll(async () => {
    worker?.shutdown();
    await running;
    await connection?.close();
    await client?.connection.close();
  });

  /** A deploy of NEW to `n` hosts, each running OLD; a distro (and so a lock) of its own. */
  function start(n: number, format: 'deb' | 'rpm' = 'deb') {
    seen = [];
    refreshes = {};
    const distro = `prep-${uid()}`;
    for (const h of hosts(n, distro)) installed[h.name] = OLD;
    const repo = config.repositories[0];
    const input: DeployStageInput = {
      pipelineId: `pipeline/${repo.name}/main/${'a'.repeat(40)}`,
      repository: {
        ...repositorySpec(config, repo, repo.branches[0]),
        staging: { tags: { Count: String(n) }, batchSize: 1 },
      },
      branch: 'main',
      sha: 'a'.repeat(40),
      distro,
      distroSpec: format === 'deb' ? { format, codename: 'bookworm', arch: 'amd64' } : { format, arch: 'x86_64' },
      environment: 'staging',
      version: NEW,
      packages: ['widget'],
      repo: { url: 'http://127.0.0.1:9/apt', suite: 'bookworm-unstable', keyUrl: 'http://127.0.0.1:9/key.asc' },
    };
    const workflowId = `${input.pipelineId}/deploy/${distro}`;
    return {
      workflowId,
      result: client.workflow.execute<typeof deployStage>('deployStage', {
        workflowId,
        taskQueue: config.temporal.taskQueue,
        args: [input],
      }),
    };
  }

  /** The stage's history: host activities as `<type> <host>[ <version>]` in the order scheduled,
   * and the index of events by what they were. */
  async function historyOf(workflowId: string) {
    const events = (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
    const scheduled = new Map<number, string>();
    const order: string[] = [];
    for (const e of events) {
      const a = e.activityTaskScheduledEventAttributes;
      if (e.eventType !== EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED || !a) continue;
      const arg = defaultPayloadConverter.fromPayload<{ host?: Host; version?: string }>(a.input!.payloads![0]);
      if (!arg.host) continue;
      const label = `${a.activityType!.name} ${arg.host.name}${a.activityType!.name === 'upgradeHost' ? ` ${arg.version}` : ''}`;
      scheduled.set(Number(e.eventId), label);
      order.push(label);
    }
    /** Index in `events` of the first event that ends the activity `label`. */
    const ended = (label: string) =>
      events.findIndex((e) => {
        const done =
          e.activityTaskCompletedEventAttributes ??
          e.activityTaskFailedEventAttributes ??
          e.activityTaskCanceledEventAttributes;
        return done && scheduled.get(Number(done.scheduledEventId)) === label;
      });
    const scheduledAt = (label: string) =>
      events.findIndex(
        (e) =>
          e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED && scheduled.get(Number(e.eventId)) === label,
      );
    const released = events.findIndex(
      (e) => e.signalExternalWorkflowExecutionInitiatedEventAttributes?.signalName === MessageNames.releaseLock,
    );
    return { order, ended, scheduledAt, released, markers: patchesIn(events) };
  }

  const reportsOf = (err: unknown): HostReport[] => {
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause.type).toBe('DeployFailed');
    return (cause.details![0] as { hosts: HostReport[] }).hosts;
  };

  it('prepares the next host while the current one upgrades, and reads versions only through prepareHost', async () => {
    // Host 1's upgrade ends only once host 2's prepare has started: it must not wait for it.
    behaviour = { upgradeWaits: { 'web-1': () => seen.includes('prepare web-2 start') } };
    const run = start(3);
    const result: DeployStageResult = await run.result;
    expect(result.status).toBe('deployed');
    expect(result.hosts.map((h) => [h.name, h.before, h.after, h.outcome])).toEqual([
      ['web-1', OLD, NEW, 'upgraded'],
      ['web-2', OLD, NEW, 'upgraded'],
      ['web-3', OLD, NEW, 'upgraded'],
    ]);
    const h = await historyOf(run.workflowId);
    expect(h.markers).toContain('deploy-prepare-ahead');
    expect(h.order).toEqual([
      'prepareHost web-1',
      'prepareHost web-2',
      `upgradeHost web-1 ${NEW}`,
      'runOnHost web-1',
      'prepareHost web-3',
      `upgradeHost web-2 ${NEW}`,
      'runOnHost web-2',
      `upgradeHost web-3 ${NEW}`,
      'runOnHost web-3',
    ]);
    // Host 2's prepare was scheduled before host 1's upgrade ended, and host 3's before host 2's.
    expect(h.scheduledAt('prepareHost web-2')).toBeLessThan(h.ended(`upgradeHost web-1 ${NEW}`));
    expect(h.scheduledAt('prepareHost web-3')).toBeLessThan(h.ended(`upgradeHost web-2 ${NEW}`));
    expect(seen).toContain('prepare web-2 start');
    expect(seen.indexOf('prepare web-2 start')).toBeLessThan(seen.indexOf(`upgrade web-1 ${NEW} end`));
    expect(seen.filter((s) => s.startsWith('hostVersion'))).toEqual([]);
    // The first batch has nothing to overlap with: its prepare reads versions only, and its
    // upgrade refreshes; the hosts prepared ahead are refreshed.
    expect(refreshes).toEqual({ 'web-1': false, 'web-2': true, 'web-3': true });
  });

  it('rpm hosts are prepared ahead for their versions only: their upgrade downloads the metadata again anyway', async () => {
    behaviour = {};
    const run = start(3, 'rpm');
    expect((await run.result).status).toBe('deployed');
    const h = await historyOf(run.workflowId);
    expect(h.order.filter((l) => l.startsWith('prepareHost'))).toHaveLength(3);
    expect(refreshes).toEqual({ 'web-1': false, 'web-2': false, 'web-3': false });
  });

  it('a failed batch leaves the host prepared ahead not-started and not rolled back; its failed prepare is not reported', async () => {
    // Host 2's prepare fails, and has failed before host 1's upgrade ends; host 1's smoke fails.
    behaviour = {
      prepareFails: new Set(['web-2']),
      smokeFails: new Set(['web-1']),
      upgradeWaits: { 'web-1': () => seen.includes('prepare web-2 failed') },
    };
    const run = start(2);
    const err = await run.result.catch((e: unknown) => e);
    const reports = reportsOf(err);
    expect((err as WorkflowFailedError).cause?.message).toBe(
      `upgrade to ${NEW} failed on web-1; rolled back 1 host(s)`,
    );
    expect(reports.map((r) => [r.name, r.before, r.after, r.outcome])).toEqual([
      ['web-1', OLD, OLD, 'failed'],
      ['web-2', null, null, 'not-started'],
    ]);
    expect(reports[0].error).toBe(`smoke exited with 1 on web-1: widget: broken; rolled back to ${OLD}`);
    expect(reports[1].error).toBeUndefined();
    expect(installed).toMatchObject({ 'web-1': OLD, 'web-2': OLD });
    const h = await historyOf(run.workflowId);
    // Host 2 was prepared, never upgraded and never rolled back; host 1 went up and back.
    expect(h.order).toEqual([
      'prepareHost web-1',
      'prepareHost web-2',
      `upgradeHost web-1 ${NEW}`,
      'runOnHost web-1',
      `upgradeHost web-1 ${OLD}`,
    ]);
    // The lock outlived everything that touched a host, the prepare ahead included.
    expect(h.released).toBeGreaterThan(h.ended('prepareHost web-2'));
    expect(h.released).toBeGreaterThan(h.ended(`upgradeHost web-1 ${OLD}`));
  });

  it('a failed prepare ahead is reported with its own batch, after the current batch succeeded', async () => {
    behaviour = {
      prepareFails: new Set(['web-2']),
      upgradeWaits: { 'web-1': () => seen.includes('prepare web-2 failed') },
    };
    const run = start(3);
    const reports = reportsOf(await run.result.catch((e: unknown) => e));
    expect(reports.map((r) => [r.name, r.after, r.outcome])).toEqual([
      ['web-1', OLD, 'rolled-back'],
      ['web-2', null, 'failed'],
      ['web-3', null, 'not-started'],
    ]);
    expect(reports[1].error).toBe(`host web-2: widget ${NEW} is not in the published repository`);
    const h = await historyOf(run.workflowId);
    // Host 1's batch ran to its end (smoke included) before host 2's failure counted; host 3 is
    // not prepared for a batch that cannot go on.
    expect(h.order).toEqual([
      'prepareHost web-1',
      'prepareHost web-2',
      `upgradeHost web-1 ${NEW}`,
      'runOnHost web-1',
      `upgradeHost web-1 ${OLD}`,
    ]);
    expect(h.released).toBeGreaterThan(h.ended(`upgradeHost web-1 ${OLD}`));
  });
});
