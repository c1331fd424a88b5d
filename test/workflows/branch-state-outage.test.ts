// The pipeline's two calls to the branch-state entity when the orchestrator cannot reach Temporal
// (time-skipping server, so retry backoffs pass in seconds of wall time). The control activities
// are the real ones (update-with-start, signal-with-start) with a client that reaches the server
// through a TCP proxy the test cuts; the workers themselves keep their own connection, as an
// orchestrator whose client connection broke would. That client makes no gRPC-level retries, so
// each activity attempt meets the outage at once and the workflow's retry policy is what shows.
//  - allocateBuild while the entity is unreachable: the run parks (running, retrying, past the ten
//    attempts other control calls get), and continues with its build number once it is back.
//  - recordGreen failing after promote: the run still succeeds, and says what was not recorded.
// Build steps and publishing are test doubles typed against the real activities.
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createControlActivities } from '../../activities/control';
import { branchStateId, pipelineId } from '../../common/ids';
import type { PipelineInput } from '../../common/types';
import { repositorySpec, type ConveyorConfig } from '../../config/conveyor';
import { branchStateQuery, statusQuery } from '../../workflows/messages';
import type { pipeline } from '../../workflows/pipeline';
import { testConfig, uid } from '../helpers/stack';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy';
import { startTimeSkipping, startTimeSkippingWorkers } from '../helpers/time-skipping';
import { builtDeb, passedStep, publishedResult } from '../helpers/doubles';

const EventType = temporal.api.enums.v1.EventType;

describe('branch-state unreachable from the orchestrator (time-skipping server)', () => {
  let env: TestWorkflowEnvironment;
  let proxy: TcpProxy;
  let proxied: Client;
  let config: ConveyorConfig;
  let workers: { stop(): Promise<void> };
  // A repository per test: each has its own branch-state entity. (On the time-skipping server an
  // idle entity ends at the server's default run timeout once a later test skips years ahead.)
  const allocating = `acme/outage-alloc-${uid()}`;
  const recording = `acme/outage-green-${uid()}`;
  /** Set by a test: cut the proxy as production's publish returns (after the promotion's write). */
  let cutAfterPromote = false;
  const published: string[] = [];

  beforeAll(async () => {
    env = await startTimeSkipping();
    proxy = await startTcpProxy(env.address);
    const connection = await Connection.connect({
      address: proxy.address,
      interceptors: [],
      // Reconnect soon after the outage ends (the default backoff grows to two minutes).
      channelArgs: { 'grpc.initial_reconnect_backoff_ms': 200, 'grpc.max_reconnect_backoff_ms': 1000 },
    });
    proxied = new Client({ connection, namespace: env.namespace ?? 'default' });
    config = testConfig(
      [allocating, recording].map((name) => ({
        name,
        cloneUrl: 'https://git.invalid/acme/outage.git',
        steps: { unit: 'make test', package: 'make package' },
        // Both build the same package name, each into a channel of its own.
        branches: [{ match: 'main', channel: name.split('/')[1] }],
        more: { packages: ['outage'] },
      })),
    );
    const [distro] = Object.keys(config.distros);
    workers = await startTimeSkippingWorkers(env, config, {
      orchestrator: {
        ...createControlActivities({ client: proxied, taskQueue: config.temporal.taskQueue }),
        reportCommitStatus: () => Promise.resolve({ reported: false, reason: 'no token' }),
        publishPackages: (i) => {
          published.push(`${i.environment}/${i.channel} ${i.artifacts.map((a) => a.version).join(',')}`);
          if (i.environment === 'production' && cutAfterPromote) proxy.down();
          return Promise.resolve(publishedResult());
        },
        publishedVersions: () => Promise.resolve({ versions: [] }),
      },
      build: {
        runStep: passedStep,
        buildPackages: (i) => builtDeb(i, 'outage', distro),
      },
    });
  });

  afterAll(async () => {
    await workers?.stop();
    await proxied?.connection.close();
    await proxy?.close();
    await env?.teardown();
  });

  function start(name: string, sha: string) {
    const repo = config.repositories.find((r) => r.name === name)!;
    const input: PipelineInput = {
      repository: repositorySpec(config, repo, repo.branches[0]),
      branch: 'main',
      sha,
      commit: { message: 'outage', author: 'dev', compareUrl: '' },
    };
    return env.client.workflow.start<typeof pipeline>('pipeline', {
      workflowId: pipelineId(name, 'main', sha),
      taskQueue: config.temporal.taskQueue,
      args: [input],
    });
  }

  /** Every attempt an activity type ended on, and its recorded retry policy's maximumAttempts. */
  async function attemptsOf(workflowId: string, activityType: string) {
    const events = (await env.client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
    const scheduled = events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === activityType);
    const ids = new Set(scheduled.map((e) => e.eventId?.toString()));
    return {
      maximumAttempts: scheduled.map((e) => e.activityTaskScheduledEventAttributes!.retryPolicy?.maximumAttempts ?? 0),
      attempts: events
        .filter(
          (e) =>
            e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED &&
            ids.has(e.activityTaskStartedEventAttributes?.scheduledEventId?.toString()),
        )
        .map((e) => e.activityTaskStartedEventAttributes!.attempt!),
    };
  }

  it('allocateBuild retries without limit while branch-state is unreachable; the run continues once it is back', async () => {
    proxy.down();
    const t0 = Date.now();
    const handle = await start(allocating, uid().repeat(5));
    const skipped0 = await env.currentTimeMs();
    // Awaiting the result lets the server skip time: the retry backoffs pass at once.
    const done = handle.result();
    let parked: { attempt: number; failure: string } | undefined;
    for (let i = 0; i < 600 && !parked; i++) {
      const pending = (await handle.describe()).raw.pendingActivities ?? [];
      const allocation = pending.find((a) => a.activityType?.name === 'allocateBuild');
      if (allocation && (allocation.attempt ?? 0) > 12)
        parked = { attempt: allocation.attempt!, failure: allocation.lastFailure?.message ?? '' };
      else await new Promise((r) => setTimeout(r, 100));
    }
    expect(parked).toBeDefined();
    // Parked, not failed: the run is running, its test stage passed and it has no build yet.
    const status = await handle.query(statusQuery);
    expect(status).toMatchObject({ status: 'running' });
    expect(status.build).toBeUndefined();
    expect(status.stages.find((s) => s.name === 'test')?.state).toBe('succeeded');
    expect(status.stages.find((s) => s.name === 'package')?.state).toBe('pending');
    const parkedFor = (await env.currentTimeMs()) - skipped0;

    proxy.up();
    const result = await done;
    const t1 = Date.now();
    expect(result.status).toBe('succeeded');
    expect(result.build).toBe(1);
    const after = await handle.query(statusQuery);
    expect(after.failure).toBeUndefined();
    expect(await attemptsOf(handle.workflowId, 'recordGreen')).toEqual({ maximumAttempts: [10], attempts: [1] });
    const green = await env.client.workflow.getHandle(branchStateId(allocating, 'main')).query(branchStateQuery);
    expect(green.lastGreen).toMatchObject({ build: 1 });
    const allocations = await attemptsOf(handle.workflowId, 'allocateBuild');
    // One activity, retried without a limit (0: unlimited), and it took more than ten attempts.
    expect(allocations.maximumAttempts).toEqual([0]);
    expect(allocations.attempts).toHaveLength(1);
    expect(allocations.attempts[0]).toBeGreaterThan(parked!.attempt - 1);
    process.stdout.write(
      `branch-state outage figures: allocateBuild ${JSON.stringify({
        attemptsWhileParked: parked!.attempt,
        succeededOnAttempt: allocations.attempts[0],
        lastFailure: parked!.failure.slice(0, 120),
        serverMinutesParked: Math.round(parkedFor / 60000),
        wallSeconds: ((t1 - t0) / 1000).toFixed(1),
      })}\n`,
    );
  });

  it('recordGreen failing after promote leaves the run succeeded, saying what was not recorded', async () => {
    proxy.up();
    cutAfterPromote = true;
    try {
      const handle = await start(recording, uid().repeat(5));
      const result = await handle.result();
      expect(result.status).toBe('succeeded');
      expect(result.promoted).toMatchObject({ environment: 'production', channel: recording.split('/')[1] });
      expect(result.stages.every((s) => s.state === 'succeeded')).toBe(true);
      expect(published).toContain(`production/outage-green-${recording.split('-').at(-1)} 1.0.0-${result.build}`);
      const status = await handle.query(statusQuery);
      expect(status.failure).toMatch(
        /^promoted, but recording the green build failed: Failed to signalWithStart Workflow: 14 UNAVAILABLE: /,
      );
      const greens = await attemptsOf(handle.workflowId, 'recordGreen');
      // The control calls' ten attempts, every one of them against the outage.
      expect(greens).toEqual({ maximumAttempts: [10], attempts: [10] });
      proxy.up();
      // The entity handed out the build but never heard that it went green.
      const state = await env.client.workflow.getHandle(branchStateId(recording, 'main')).query(branchStateQuery);
      expect(state).toMatchObject({ lastBuild: result.build });
      expect(state.lastGreen).toBeUndefined();
      process.stdout.write(
        `branch-state outage figures: recordGreen ${JSON.stringify({ attempts: greens.attempts[0], runStatus: result.status, failure: status.failure?.slice(0, 120) })}\n`,
      );
    } finally {
      cutAfterPromote = false;
      proxy.up();
    }
  });
});
