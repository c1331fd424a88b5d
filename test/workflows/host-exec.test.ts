// The verify stage's hostExec Update on the dev server, with test doubles for the activities (typed
// against the real ones): the validator accepts only this run's hosts and only while the e2e step
// runs; an accepted request runs execOnHost on the orchestrator's queue (never a builder's) with
// the run's CONVEYOR_* values; a command still running when the e2e step ends is cancelled and its
// handler finishes before the stage completes; every accepted command is in the history.
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowUpdateFailedError, WorkflowUpdateStage, type Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { BuildActivities, OrchestratorActivities } from '../../activities';
import type { ExecOnHostInput, Host } from '../../activities/fleet';
import type { HostExecResult } from '../../common/host-exec';
import { buildQueue } from '../../common/queues';
import type { StepResult } from '../../common/types';
import { repositorySpec, type ConveyorConfig } from '../../config/conveyor';
import { hostExecUpdate } from '../../workflows/messages';
import type { verifyStage, VerifyStageInput } from '../../workflows/stages/verify';
import { clientFor, testConfig, testEnv, uid } from '../helpers/stack';
import { patchesIn } from '../helpers/doubles';

const EventType = temporal.api.enums.v1.EventType;
const b64 = (s: string) => Buffer.from(s).toString('base64');
const text = (s: string) => Buffer.from(s, 'base64').toString('utf8');

/** What an update call came back with: the result, or the failure's message. */
async function outcome(p: Promise<HostExecResult>): Promise<HostExecResult | { refused: string }> {
  try {
    return await p;
  } catch (err) {
    if (!(err instanceof WorkflowUpdateFailedError)) throw err;
    const cause = err.cause;
    const type = cause instanceof ApplicationFailure ? cause.type : '?';
    return { refused: `${type}: ${cause?.message ?? err.message}` };
  }
}

describe('verify stage: the hostExec Update', () => {
  let config: ConveyorConfig;
  let client: Client;
  let connection: NativeConnection;
  let distro: string;
  const executed: ExecOnHostInput[] = [];
  let e2e: (stageWorkflowId: string) => Promise<void> = () => Promise.resolve();
  let smoke: (stageWorkflowId: string) => Promise<void> = () => Promise.resolve();
  let workers: Worker[] = [];
  /** What each host runs, as hostVersion reports it. */
  const installed: Record<string, string> = {};
  /** The same for a second package, gadget. */
  const gadget: Record<string, string> = {};
  /** How many version reads ran at once, at most. */
  const versionReads = { inFlight: 0, most: 0 };
  let running: Promise<void>[] = [];

  const stepResult = (step: string): StepResult => ({
    step,
    exitCode: 0,
    headSha: 'a'.repeat(40),
    logKey: 'l',
    tail: '',
    durationMs: 1,
  });

  beforeAll(async () => {
    config = testConfig([
      {
        name: `acme/hx-${uid()}`,
        cloneUrl: 'https://git.invalid/acme/hx.git',
        steps: { unit: 'true', package: 'true', smoke: 'true', e2e: 'make e2e' },
      },
    ]);
    [distro] = Object.keys(config.distros);
    client = await clientFor(config);
    connection = await NativeConnection.connect({ address: testEnv().temporal });
    const orchestrator: Partial<OrchestratorActivities> = {
      hostVersion: async (i) => {
        versionReads.inFlight++;
        versionReads.most = Math.max(versionReads.most, versionReads.inFlight);
        await new Promise((r) => setTimeout(r, 100));
        versionReads.inFlight--;
        return {
          version: i.packageName === 'gadget' ? (gadget[i.host.name] ?? null) : (installed[i.host.name] ?? null),
        };
      },
      runOnHost: async (i) => {
        await smoke(Context.current().info.workflowExecution?.workflowId ?? '');
        return { exitCode: 0, tail: `smoke on ${i.host.name}`, logKey: i.logKey };
      },
      execOnHost: async (i): Promise<HostExecResult> => {
        executed.push(i);
        if (i.argv[0] === 'sleep') {
          // Runs until cancelled, heartbeating as the real executors do.
          const ctx = Context.current();
          for (;;) {
            ctx.heartbeat();
            await Promise.race([ctx.cancelled, new Promise((r) => setTimeout(r, 100))]);
          }
        }
        return {
          exitCode: 3,
          stdout: b64(`${i.argv.join(' ')} on ${i.host.name} ${i.env.CONVEYOR_HOST} ${i.env.CONVEYOR_VERSION}\n`),
          stderr: b64(i.stdin ? text(i.stdin) : ''),
          durationMs: 1,
        };
      },
    };
    const build: Partial<BuildActivities> = {
      runE2e: async (i) => {
        await e2e(i.stageWorkflowId);
        return stepResult(i.step);
      },
    };
    workers = [
      await Worker.create({
        connection,
        namespace: config.temporal.namespace,
        taskQueue: config.temporal.taskQueue,
        workflowBundle: { codePath: testEnv().bundle },
        activities: orchestrator,
        // Cancellations reach an activity with its heartbeats: no throttling in the test.
        maxHeartbeatThrottleInterval: '100 ms',
      }),
      await Worker.create({
        connection,
        namespace: config.temporal.namespace,
        taskQueue: buildQueue(distro),
        activities: build,
      }),
    ];
    running = workers.map((w) => w.run());
  });

  afterAll(async () => {
    workers.forEach((w) => w.shutdown());
    await Promise.all(running);
    await connection?.close();
    await client?.connection.close();
  });

  const hosts: Host[] = [
    { instanceId: 'i-0000000000000001a', name: 'web-1', distro: 'x', executor: 'local', root: '/nonexistent/web-1' },
    { instanceId: 'i-0000000000000002a', name: 'web-2', distro: 'x', executor: 'ssm' },
  ];

  const input = (): VerifyStageInput => {
    const repo = config.repositories[0];
    return {
      pipelineId: `pipeline/${repo.name}/main/${'a'.repeat(40)}`,
      repository: repositorySpec(config, repo, repo.branches[0]),
      branch: 'main',
      sha: 'a'.repeat(40),
      version: '1.2.0',
      build: 7,
      hosts: [{ distro, hosts: hosts.map((h) => ({ ...h, distro })) }],
    };
  };

  it('refuses to verify when another deploy changed a host after this one', async () => {
    installed['web-1'] = '1.2.0-7';
    installed['web-2'] = '1.2.0-9';
    let ran = false;
    smoke = () => {
      ran = true;
      return Promise.resolve();
    };
    const workflowId = `${input().pipelineId}/verify-moved-${uid()}`;
    const err = (await client.workflow
      .execute<typeof verifyStage>('verifyStage', {
        workflowId,
        taskQueue: config.temporal.taskQueue,
        args: [{ ...input(), packages: ['widget'] }],
      })
      .catch((e: unknown) => e)) as { cause?: ApplicationFailure };
    expect(err.cause).toBeInstanceOf(ApplicationFailure);
    expect(err.cause?.type).toBe('VerifyFailed');
    expect(err.cause?.message).toBe(
      'not verifying 1.2.0-7: web-2 runs widget 1.2.0-9 (another deploy changed the hosts after this one)',
    );
    expect(ran).toBe(false);
    installed['web-2'] = '1.2.0-7';
    smoke = () => Promise.resolve();
    const ok = await client.workflow.execute<typeof verifyStage>('verifyStage', {
      workflowId: `${workflowId}-again`,
      taskQueue: config.temporal.taskQueue,
      args: [{ ...input(), packages: ['widget'] }],
    });
    expect(ok.smoke.map((x) => x.host)).toEqual(['web-1', 'web-2']);
  });

  it('reads every host and package at once, and names each one that moved in order', async () => {
    installed['web-1'] = '1.2.0-7';
    installed['web-2'] = '1.2.0-9';
    gadget['web-1'] = '1.2.0-8';
    gadget['web-2'] = '1.2.0-7';
    versionReads.most = 0;
    const workflowId = `${input().pipelineId}/verify-reads-${uid()}`;
    const err = (await client.workflow
      .execute<typeof verifyStage>('verifyStage', {
        workflowId,
        taskQueue: config.temporal.taskQueue,
        args: [{ ...input(), packages: ['widget', 'gadget'] }],
      })
      .catch((e: unknown) => e)) as { cause?: ApplicationFailure };
    expect(err.cause?.message).toBe(
      'not verifying 1.2.0-7: web-1 runs gadget 1.2.0-8, web-2 runs widget 1.2.0-9 (another deploy changed the hosts after this one)',
    );
    expect(versionReads.most).toBe(4);
    const markers = patchesIn((await client.workflow.getHandle(workflowId).fetchHistory()).events ?? []);
    expect(markers).toContain('verify-version-checks-side-by-side');
    installed['web-2'] = '1.2.0-7';
  });

  it('runs commands for this run hosts during e2e, refuses the rest with the reason', async () => {
    const seen: Record<string, HostExecResult | { refused: string }> = {};
    smoke = async (id) => {
      seen.duringSmoke = await outcome(
        client.workflow.getHandle(id).executeUpdate(hostExecUpdate, { args: [{ host: 'web-1', argv: ['id'] }] }),
      );
    };
    e2e = async (id) => {
      const ask = (req: unknown) =>
        outcome(client.workflow.getHandle(id).executeUpdate(hostExecUpdate, { args: [req as never] }));
      seen.ok = await ask({ host: 'web-2', argv: ['cat', '-'], stdin: b64('piped input') });
      seen.otherHost = await ask({ host: 'db-1', argv: ['cat', '/etc/shadow'] });
      seen.badArgv = await ask({ host: 'web-1', argv: [] });
      seen.extra = await ask({ host: 'web-1', argv: ['id'], root: '/' });
    };
    const workflowId = `${input().pipelineId}/verify-${uid()}`;
    const result = await client.workflow.execute<typeof verifyStage>('verifyStage', {
      workflowId,
      taskQueue: config.temporal.taskQueue,
      args: [input()],
    });
    expect(result.smoke.map((s) => s.host)).toEqual(['web-1', 'web-2']);

    expect(seen.duringSmoke).toEqual({
      refused: expect.stringMatching(/^HostExecRefused: host-exec is served only while the e2e step of pipeline\//),
    });
    expect(seen.otherHost).toEqual({
      refused: 'HostExecRefused: host "db-1" is not a staging host of this run (its hosts: web-1, web-2)',
    });
    expect(seen.badArgv).toEqual({ refused: 'HostExecRefused: argv must be a non-empty list of strings' });
    expect(seen.extra).toEqual({ refused: 'HostExecRefused: unknown field(s) in the request: root' });
    expect(seen.ok).toMatchObject({ exitCode: 3 });
    const ok = seen.ok as HostExecResult;
    expect(text(ok.stdout)).toBe('cat - on web-2 web-2 1.2.0\n');
    expect(text(ok.stderr)).toBe('piped input');

    // Only the accepted request reached the activity, with the host from the run's input (not
    // from the request) and the run's own CONVEYOR_* values.
    const mine = executed.filter((e) => e.env.CONVEYOR_REPOSITORY === config.repositories[0].name);
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ host: { name: 'web-2', executor: 'ssm' }, argv: ['cat', '-'] });
    expect(mine[0].env).toMatchObject({
      CONVEYOR_HOST: 'web-2',
      CONVEYOR_BUILD: '7',
      CONVEYOR_PACKAGE_VERSION: '1.2.0-7',
    });

    // The history: smoke and the command on the orchestrator's queue, e2e on the build queue, the
    // accepted Update recorded with its request, the queue switch recorded as a patch marker.
    const history = await client.workflow.getHandle(workflowId).fetchHistory();
    const scheduled = history.events!.filter((e) => e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED);
    expect(
      scheduled.map((e) => [
        e.activityTaskScheduledEventAttributes!.activityType!.name,
        e.activityTaskScheduledEventAttributes!.taskQueue!.name,
      ]),
    ).toEqual([
      ['runOnHost', config.temporal.taskQueue],
      ['runOnHost', config.temporal.taskQueue],
      ['runE2e', buildQueue(distro)],
      ['execOnHost', config.temporal.taskQueue],
    ]);
    const accepted = history.events!.filter(
      (e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    );
    expect(accepted).toHaveLength(1);
    const markers = history.events!.filter((e) => e.eventType === EventType.EVENT_TYPE_MARKER_RECORDED);
    expect(markers.length).toBeGreaterThanOrEqual(1);
  });

  it('cancels a command still running when the e2e step ends, and finishes its handler first', async () => {
    let started: Promise<HostExecResult | { refused: string }> | undefined;
    smoke = () => Promise.resolve();
    e2e = async (id) => {
      const handle = await client.workflow.getHandle(id).startUpdate(hostExecUpdate, {
        args: [{ host: 'web-1', argv: ['sleep', '1000'] }],
        waitForStage: WorkflowUpdateStage.ACCEPTED,
      });
      started = outcome(handle.result());
      // The step ends without waiting for its command.
    };
    const workflowId = `${input().pipelineId}/verify-${uid()}`;
    const result = await client.workflow.execute<typeof verifyStage>('verifyStage', {
      workflowId,
      taskQueue: config.temporal.taskQueue,
      args: [input()],
    });
    expect(result.e2e).toBeDefined();
    expect(await started).toEqual({ refused: expect.stringMatching(/^HostExecFailed: sleep on web-1: .*cancel/i) });
    const history = await client.workflow.getHandle(workflowId).fetchHistory();
    const types = history.events!.map((e) => e.eventType);
    // The command was cancelled and its cancellation completed before the workflow did.
    const cancelled = types.indexOf(EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED);
    const updateDone = types.indexOf(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED);
    const done = types.indexOf(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED);
    expect(cancelled).toBeGreaterThan(0);
    expect(updateDone).toBeGreaterThan(cancelled);
    expect(done).toBeGreaterThan(updateDone);
  });
});
